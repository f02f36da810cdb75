"""The tally of a `previewer warm` run: counts, latency percentiles, the summary.

Pure: imports nothing that touches the network, the disk or libvips.

Latencies go into a log-bucketed histogram (buckets 1% wide, from 10 us to
over an hour: about 2,000 counters), so a run of any length holds constant
memory and a percentile is within 1% of the exact one. The maximum is exact.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR = 1e-5  # seconds: the first bucket holds everything faster


class Histogram:
    """Counts of durations in buckets growing by 1%; percentiles from them."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        index = int(math.log(seconds / _FLOOR) / _LOG_GROWTH) if seconds > _FLOOR else 0
        self._counts[index] += 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def percentile(self, p: float) -> float:
        """The `p`th percentile (0 < p <= 100) in seconds; 0.0 when empty.

        A bucket reports its upper bound, capped by the exact maximum, so the
        figure never understates the latency by more than a bucket's 1%.
        """
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                return min(_FLOOR * _GROWTH ** (index + 1), self.max)
        return self.max  # pragma: no cover - the loop reaches `count`


@dataclass
class Tally:
    """Everything counted so far; updated once per answer or failure."""

    latency: Histogram = field(default_factory=Histogram)
    statuses: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)  # X-Cache values
    bytes_received: int = 0
    errors: int = 0

    @property
    def done(self) -> int:
        return self.latency.count

    def answer(
        self, status: int, seconds: float, size: int, x_cache: str | None, code: str | None
    ) -> None:
        """An HTTP answer. Success is 2xx or 304; `code` is the error JSON's `error`."""
        self.latency.add(seconds)
        self.statuses[str(status)] += 1
        self.bytes_received += size
        if x_cache:
            self.cache[x_cache.upper()] += 1
        if not (200 <= status < 300 or status == 304):
            self.errors += 1
            self.error_codes[code or f"http_{status}"] += 1

    def failure(self, seconds: float, code: str) -> None:
        """No HTTP answer: `code` names the transport failure (timeout, connection...)."""
        self.latency.add(seconds)
        self.statuses["none"] += 1
        self.errors += 1
        self.error_codes[code] += 1

    @property
    def error_ratio(self) -> float:
        return self.errors / self.done if self.done else 0.0

    def summary(self, elapsed: float) -> dict[str, Any]:
        """The figures of the run, as `--json` prints them (latencies in ms)."""
        hits, misses = self.cache["HIT"], self.cache["MISS"]
        answered = sum(self.cache.values())
        return {
            "requests": self.done,
            "seconds": round(elapsed, 3),
            "requests_per_second": round(self.done / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_ms": {
                name: round(self.latency.percentile(p) * 1000, 3)
                for name, p in (("p50", 50), ("p90", 90), ("p99", 99))
            }
            | {"max": round(self.latency.max * 1000, 3)},
            "statuses": dict(sorted(self.statuses.items())),
            "errors": self.errors,
            "error_ratio": round(self.error_ratio, 6),
            "error_codes": dict(sorted(self.error_codes.items())),
            "cache": {
                "hits": hits,
                "misses": misses,
                "hit_ratio": round(hits / answered, 6) if answered else None,
            },
            "bytes_received": self.bytes_received,
        }
