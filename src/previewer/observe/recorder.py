"""The metrics seam: what the server, the service and the render stage report to.

Low in the layers: imports no exporter and nothing above the error
hierarchy. Every layer reports through `Recorder`, three calls that take
only values from small fixed sets (never a URL, a host or a key):

- `request`: one response sent (status, error code, hit or miss, time,
  body bytes, the reason of a 503 `overloaded`, and the operation of its
  preview route);
- `phase`: the time a miss spent in one phase (queue, fetch, render, store);
- `fetch`: one origin fetch ended, its outcome and the bytes received.

`NoMetrics` is the recorder while `--metrics-address` is off: each call
does nothing. `Durations` is a histogram kept on one thread as plain
numbers (request durations on the server, job durations on a broker
front), which the exporter turns into families at scrape time. The
Prometheus recorder itself is `metrics.PrometheusMetrics`.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Literal, Protocol

from previewer.errors import (
    PreviewError,
    SourceForbidden,
    SourceStatus,
    SourceTimeout,
    SourceTooLarge,
)

Phase = Literal["queue", "fetch", "render", "store"]
PHASES: tuple[Phase, ...] = ("queue", "fetch", "render", "store")
FETCH_OUTCOMES = (
    "ok",
    "origin_4xx",
    "origin_5xx",
    "unreachable",
    "timeout",
    "too_large",
    "forbidden",
)
# descriptors: EMFILE or ENFILE during a request; broker mode adds broker_down,
# broker_full and no_workers
OVERLOAD_REASONS = ("queue_full", "descriptors")
CACHE_RESULTS = ("hit", "miss")
NO_OPERATION = "none"  # the operation label of a response to no preview route
# Seconds: a hit from memory takes well under a millisecond, a miss up to the request timeout.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Recorder(Protocol):
    """Where the server, the service and the render stage report; thread-safe."""

    def request(
        self,
        status: int,
        code: str,
        cache: str | None,
        seconds: float,
        sent: int,
        overload: str | None = None,
        operation: str | None = None,
    ) -> None:
        """One response: `code` is the error code or `ok`; `cache` is hit, miss or None;
        `operation` is fill or fit on a preview route, None elsewhere."""

    def phase(self, phase: Phase, seconds: float) -> None:
        """A miss spent `seconds` in `phase`."""

    def fetch(self, outcome: str, received: int) -> None:
        """An origin fetch ended with `outcome` (FETCH_OUTCOMES), `received` body bytes."""


class NoMetrics:
    """The recorder while metrics are off."""

    def request(
        self,
        status: int,
        code: str,
        cache: str | None,
        seconds: float,
        sent: int,
        overload: str | None = None,
        operation: str | None = None,
    ) -> None:
        return None

    def phase(self, phase: Phase, seconds: float) -> None:
        return None

    def fetch(self, outcome: str, received: int) -> None:
        return None


def fetch_outcome(exc: PreviewError) -> str:
    """The outcome label of a fetch that raised `exc`."""
    if isinstance(exc, SourceStatus):
        return "origin_4xx" if 400 <= exc.upstream_status < 500 else "origin_5xx"
    if isinstance(exc, SourceTimeout):
        return "timeout"
    if isinstance(exc, SourceTooLarge):
        return "too_large"
    if isinstance(exc, SourceForbidden):
        return "forbidden"
    return "unreachable"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Durations:
    """A histogram's bucket counts and sum, kept by one thread (the event loop), read by
    the scraper."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
        self.sum += seconds

    def cumulative(self) -> list[int]:
        """The counts at or below each bound of BUCKETS, then the total, as the exposition
        has them."""
        counts = list(self.counts)  # one copy, taken under the GIL
        return list(itertools.accumulate(counts))
