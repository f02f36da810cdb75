"""warmstats: the latency histogram against exact percentiles, and the tally's summary."""

from __future__ import annotations

import math
import random

import pytest

from previewer.warm.stats import Histogram, Tally


def _exact(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_one_percent_of_the_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-6, 1.5) for _ in range(20_000)]  # ~2.5 ms median
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    for p in (50, 90, 99, 99.9, 100):
        exact = _exact(values, p)
        assert exact <= histogram.percentile(p) <= exact * 1.0101 + 1e-5, p
    assert histogram.max == max(values)
    assert histogram.count == len(values)


def test_an_empty_histogram_reports_zero_and_tiny_values_land_in_the_first_bucket() -> None:
    histogram = Histogram()
    assert histogram.percentile(99) == 0.0
    histogram.add(0.0)
    histogram.add(1e-9)
    assert histogram.percentile(50) <= 1.1e-5


def test_tally_summary_counts_statuses_codes_hits_and_bytes() -> None:
    tally = Tally()
    tally.answer(200, 0.010, 1000, "MISS", None)
    tally.answer(200, 0.002, 1000, "HIT", None)
    tally.answer(304, 0.001, 0, "hit", None)
    tally.answer(422, 0.005, 80, None, "source_not_image")
    tally.answer(502, 0.005, 10, None, None)
    tally.failure(0.5, "timeout")
    summary = tally.summary(2.0)
    assert summary["requests"] == 6
    assert summary["requests_per_second"] == 3.0
    assert summary["statuses"] == {"200": 2, "304": 1, "422": 1, "502": 1, "none": 1}
    assert summary["errors"] == 3
    assert summary["error_ratio"] == 0.5
    assert summary["error_codes"] == {"http_502": 1, "source_not_image": 1, "timeout": 1}
    assert summary["cache"] == {"hits": 2, "misses": 1, "hit_ratio": round(2 / 3, 6)}
    assert summary["bytes_received"] == 2090
    latency = summary["latency_ms"]
    assert latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"] == 500.0


def test_a_run_with_no_answers_has_no_hit_ratio() -> None:
    summary = Tally().summary(0.0)
    assert summary["requests"] == 0
    assert summary["requests_per_second"] == 0.0
    assert summary["cache"]["hit_ratio"] is None
    assert summary["error_ratio"] == 0.0
