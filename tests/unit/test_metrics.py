"""previewer.observe.recorder: the outcome labels, and the recorder's series, read back as text."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from previewer.broker.worker import WorkerCounters
from previewer.errors import (
    PreviewError,
    SourceForbidden,
    SourceStatus,
    SourceTimeout,
    SourceTooLarge,
    SourceUnavailable,
)
from previewer.metrics import PrometheusMetrics, WorkerCollector
from previewer.observe.recorder import FETCH_OUTCOMES, NoMetrics, fetch_outcome, status_class
from previewer.render.renderer import RendererHealth


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (SourceStatus(404), "origin_4xx"),
        (SourceStatus(451), "origin_4xx"),
        (SourceStatus(503), "origin_5xx"),
        (SourceStatus(302), "origin_5xx"),  # a redirect without Location: not a success
        (SourceTimeout(), "timeout"),
        (SourceTooLarge(), "too_large"),
        (SourceForbidden(), "forbidden"),
        (SourceUnavailable(), "unreachable"),
    ],
)
def test_each_fetch_error_has_its_outcome(error: PreviewError, outcome: str) -> None:
    assert fetch_outcome(error) == outcome
    assert outcome in FETCH_OUTCOMES


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 304, 404, 503)] == ["2xx", "3xx", "4xx", "5xx"]


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_recorder_counts_what_it_is_told() -> None:
    metrics = PrometheusMetrics()
    metrics.request(200, "ok", "hit", 0.0004, 1000)
    metrics.request(200, "ok", "miss", 0.3, 2000)
    metrics.request(304, "ok", "hit", 0.0002, 0)
    metrics.request(503, "overloaded", None, 0.001, 0, overload="queue_full")
    metrics.request(200, "ok", "miss", 0.2, 0, operation="fit")
    metrics.request(404, "not_found", None, 0.0001, 0)
    metrics.phase("render", 0.2)
    metrics.fetch("ok", 5000)
    metrics.fetch("timeout", 0)
    got = samples(metrics)

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    requests = "previewer_requests_total"
    assert value(requests, status_class="2xx", code="ok", operation="none") == 2
    assert value(requests, status_class="2xx", code="ok", operation="fit") == 1
    assert value(requests, status_class="3xx", code="ok", operation="none") == 1
    assert value(requests, status_class="5xx", code="overloaded", operation="none") == 1
    assert value(requests, status_class="4xx", code="not_found", operation="none") == 1
    assert value("previewer_request_duration_seconds_count", cache="hit") == 2
    assert value("previewer_request_duration_seconds_bucket", cache="hit", le="0.0005") == 2
    assert value("previewer_request_duration_seconds_bucket", cache="miss", le="0.25") == 1
    assert value("previewer_request_duration_seconds_bucket", cache="miss", le="0.5") == 2
    assert value("previewer_served_bytes_total") == 3000
    assert value("previewer_overloaded_total", reason="queue_full") == 1
    assert value("previewer_miss_phase_seconds_sum", phase="render") == pytest.approx(0.2)
    assert value("previewer_miss_phase_seconds_count", phase="queue") == 0
    assert value("previewer_origin_fetches_total", outcome="ok") == 1
    assert value("previewer_origin_fetches_total", outcome="timeout") == 1
    assert value("previewer_fetched_bytes_total") == 5000
    assert not [name for name, _ in got if name.endswith("_created")]


def test_each_recorder_has_its_own_registry() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.fetch("ok", 10)
    assert samples(second)[("previewer_fetched_bytes_total", frozenset())] == 0


def test_no_metrics_records_nothing() -> None:
    off = NoMetrics()
    assert off.request(200, "ok", "hit", 0.1, 10) is None
    assert off.phase("store", 0.1) is None
    assert off.fetch("ok", 10) is None


def test_a_duration_on_a_bound_falls_in_that_bucket_and_buckets_are_cumulative() -> None:
    metrics = PrometheusMetrics()
    for seconds in (0.25, 0.2500001, 100.0):
        metrics.request(200, "ok", "miss", seconds, 0)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[
            (
                "previewer_request_duration_seconds_bucket",
                frozenset({("cache", "miss"), ("le", le)}),
            )
        ]

    assert (bucket("0.1"), bucket("0.25"), bucket("0.5"), bucket("30.0"), bucket("+Inf")) == (
        0,
        1,
        2,
        2,
        3,
    )
    assert got[("previewer_request_duration_seconds_count", frozenset({("cache", "miss")}))] == 3
    assert got[
        ("previewer_request_duration_seconds_sum", frozenset({("cache", "miss")}))
    ] == pytest.approx(100.5000001)


def test_a_worker_without_a_source_cache_has_no_cache_samples() -> None:
    metrics = PrometheusMetrics()
    health = RendererHealth(
        1, 2, fetches=3, source_hits=0, renders=3, abandoned=0, source_cache=None
    )
    counters = WorkerCounters(jobs=4, expired=1, redelivered=2, orphaned=1)
    metrics.register(WorkerCollector(lambda: health, counters, lambda: True))
    got = samples(metrics)
    assert not [name for name, _ in got if name.startswith("previewer_cache_")]
    assert got[("previewer_renders_in_progress", frozenset())] == 1
    assert got[("previewer_renders_waiting", frozenset())] == 2
    assert got[("previewer_broker_jobs_expired_total", frozenset())] == 1
    assert got[("previewer_broker_redeliveries_total", frozenset())] == 2
    assert got[("previewer_broker_jobs_orphaned_total", frozenset())] == 1
    assert got[("previewer_broker_connected", frozenset())] == 1
