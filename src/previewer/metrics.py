"""Prometheus: the recorder that keeps the numbers, and the exposition that reads the rest.

The only module that imports `prometheus_client`, and high in the layers:
it reads the health of the service, the render stage, the connections and
the worker at scrape time. Nothing below it imports it; they report
through `observe.recorder.Recorder`.

`PrometheusMetrics` keeps the counters and histograms, and a collector
(`HealthCollector`) reads everything that is already counted elsewhere at
scrape time, from `PreviewService.health()`: cache bytes and entries,
renders running and waiting, cache hits and misses. A hit served from
memory costs the metrics a few additions to plain numbers
(`PrometheusMetrics.request`, about half a microsecond), turned into
families at scrape time too.

Broker mode's metrics come the same way, from the counters and the
connection state it already keeps: on a front, `HealthCollector` reads the
`BrokerHealth` in the service's health; a worker has `WorkerCollector`
(its render stage's health, its `WorkerCounters`, its connection). A
front's job durations are a `Durations` the broker renderer keeps on the
event loop, like the request durations, read by `JobDurationCollector`.

The names, types and labels are the contract of deploy/metrics.txt, which
docs/operations.md explains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from previewer.observe.recorder import (
    BUCKETS,
    CACHE_RESULTS,
    FETCH_OUTCOMES,
    NO_OPERATION,
    OVERLOAD_REASONS,
    PHASES,
    Durations,
    Phase,
    status_class,
)

if TYPE_CHECKING:
    from previewer.broker.worker import WorkerCounters
    from previewer.http.connections import ConnectionCounts
    from previewer.render.renderer import RendererHealth
    from previewer.service import Health

# The broker-mode families of the contract.
BROKER_METRICS = (
    "previewer_broker_jobs_published_total",
    "previewer_broker_replies_total",
    "previewer_broker_jobs_expired_total",
    "previewer_broker_redeliveries_total",
    "previewer_broker_jobs_orphaned_total",
    "previewer_broker_connected",
    "previewer_broker_job_duration_seconds",
    "previewer_broker_queue_depth",
)
# Counters without a `_created` series: the contract lists none.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# the `le` labels of BUCKETS, spelt as prometheus-client spells its own histograms' bounds
_LE = [floatToGoString(bound) for bound in BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]


def _buckets(durations: Durations) -> list[tuple[str, float]]:
    """A `Durations`' cumulative counts with their `le` labels: (le, count)."""
    return list(zip(_LE, durations.cumulative(), strict=True))


class PrometheusMetrics:
    """The recorder while metrics are on, its registry, and the scrape server.

    `request`, called for every response, is on the hit path: it only adds
    to plain numbers, kept by the event loop (the one thread that calls it)
    and turned into families at scrape time by `_ResponseCollector`. The
    miss path's calls (`phase`, `fetch`, from the loop and the render
    threads) go to prometheus-client's thread-safe counters and histograms.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # process_*: CPU seconds, resident memory, open files, start time (from /proc)
        prometheus_client.ProcessCollector(registry=registry)
        phases = prometheus_client.Histogram(
            "previewer_miss_phase_seconds",
            "Time a miss spends in each phase: queue, fetch, render, store.",
            ("phase",),
            buckets=BUCKETS,
            registry=registry,
        )
        fetches = prometheus_client.Counter(
            "previewer_origin_fetches_total",
            "Source fetches, by outcome.",
            ("outcome",),
            registry=registry,
        )
        self._fetched = prometheus_client.Counter(
            "previewer_fetched_bytes_total",
            "Source bytes received from origins.",
            registry=registry,
        )
        self._phases = {phase: phases.labels(phase) for phase in PHASES}
        self._fetches = {outcome: fetches.labels(outcome) for outcome in FETCH_OUTCOMES}
        # written by the event loop only
        self.responses: dict[tuple[int, str, str], int] = {}
        self.durations = {result: Durations() for result in CACHE_RESULTS}
        self.served = 0
        self.overloaded = dict.fromkeys(OVERLOAD_REASONS, 0)
        registry.register(_ResponseCollector(self))

    # --- Recorder ----------------------------------------------------------------

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
        # statuses, codes and operations come from fixed sets: the dict stays small
        key = (status, code, operation or NO_OPERATION)
        self.responses[key] = self.responses.get(key, 0) + 1
        if cache is not None:
            self.durations[cache].observe(seconds)
        self.served += sent
        if overload is not None:
            self.overloaded[overload] = self.overloaded.get(overload, 0) + 1

    def phase(self, phase: Phase, seconds: float) -> None:
        self._phases[phase].observe(seconds)

    def fetch(self, outcome: str, received: int) -> None:
        self._fetches[outcome].inc()
        if received:
            self._fetched.inc(received)

    # --- what is read at scrape time ---------------------------------------------

    def register(self, collector: Collector) -> None:
        """Add a collector read at each scrape (the service's health; broker mode's)."""
        self.registry.register(collector)

    # --- the scrape ------------------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and Content-Type of a scrape: the text format, or OpenMetrics if asked.

        Blocking for as long as the collectors take (a few milliseconds):
        the metrics port (http/server.py) runs it on a thread.
        """
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class _ResponseCollector:
    """The families of `PrometheusMetrics.request`'s numbers, made at scrape time."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        by_class: dict[tuple[str, str, str], int] = {}
        for (status, code, operation), count in dict(metrics.responses).items():
            labels = (status_class(status), code, operation)
            by_class[labels] = by_class.get(labels, 0) + count
        responses = CounterMetricFamily(
            "previewer_requests_total",
            "Responses sent, by status class, code (the error code, or ok) and operation.",
            labels=("status_class", "code", "operation"),
        )
        for labels, count in sorted(by_class.items()):
            responses.add_metric(labels, count)
        yield responses
        durations = HistogramMetricFamily(
            "previewer_request_duration_seconds",
            "Time from request to response of a preview, by cache (hit or miss).",
            labels=("cache",),
        )
        for result, histogram in metrics.durations.items():
            durations.add_metric((result,), _buckets(histogram), sum_value=histogram.sum)
        yield durations
        overloaded = CounterMetricFamily(
            "previewer_overloaded_total", "503 answers, by reason.", labels=("reason",)
        )
        for reason, count in dict(metrics.overloaded).items():
            overloaded.add_metric((reason,), count)
        yield overloaded
        yield CounterMetricFamily(
            "previewer_served_bytes_total",
            "Preview bytes sent to clients (response bodies).",
            value=metrics.served,
        )


class HealthCollector:
    """Turns `PreviewService.health()` into the gauges and counters it already holds."""

    def __init__(self, health: Callable[[], Health]) -> None:
        self._health = health

    def describe(self) -> list[Metric]:
        return []  # described by collecting: the families are fixed

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        lookups = CounterMetricFamily(
            "previewer_cache_requests_total",
            "Preview cache lookups, by result (hit or miss).",
            labels=("result",),
        )
        lookups.add_metric(("hit",), health.counters.hits)
        lookups.add_metric(("miss",), health.counters.misses)
        yield lookups
        size = GaugeMetricFamily(
            "previewer_cache_bytes", "Bytes held by a disk cache.", labels=("cache",)
        )
        entries = GaugeMetricFamily(
            "previewer_cache_entries", "Entries held by a disk cache.", labels=("cache",)
        )
        caches = [("preview", health.cache)]
        if health.source_cache is not None:
            caches.append(("source", health.source_cache))
        for name, cache in caches:
            size.add_metric((name,), cache.bytes)
            entries.add_metric((name,), cache.entries)
        yield size
        yield entries
        broker = health.broker
        if broker is None:  # a front in broker mode renders nothing itself
            yield from _render_gauges(
                health.renders_in_progress - health.renders_waiting, health.renders_waiting
            )
            return
        yield CounterMetricFamily(
            "previewer_broker_jobs_published_total",
            "Render jobs published to the job queue.",
            value=broker.published,
        )
        yield CounterMetricFamily(
            "previewer_broker_replies_total",
            "Replies received for jobs this front is waiting on.",
            value=broker.replies,
        )
        yield CounterMetricFamily(
            "previewer_broker_jobs_expired_total",
            "Requests that stopped waiting for their job's reply (deadline passed or abandoned).",
            value=broker.expired,
        )
        depth = GaugeMetricFamily(
            "previewer_broker_queue_depth", "Jobs ready in the job queue, as the front last saw."
        )
        if broker.queue_depth is not None:
            depth.add_metric((), broker.queue_depth)
        yield depth
        yield _connected(broker.connected)


class ConnectionCollector:
    """The client connections of the public port: open, closed by a bound, refused."""

    def __init__(self, counts: Callable[[], ConnectionCounts]) -> None:
        self._counts = counts

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield GaugeMetricFamily(
            "previewer_connections_open", "Client connections open now.", value=counts.open
        )
        closed = CounterMetricFamily(
            "previewer_connections_closed_total",
            "Client connections closed by a bound: header_timeout (no whole request head in "
            "time), idle_timeout (kept alive, idle), send_timeout (the client read nothing), "
            "evicted (closed at the cap to make room).",
            labels=("reason",),
        )
        for reason, count in counts.closed.items():
            closed.add_metric((reason,), count)
        yield closed
        yield CounterMetricFamily(
            "previewer_connections_refused_total",
            "Client connections refused at the cap with 503: every open one was busy.",
            value=counts.refused,
        )


class JobDurationCollector:
    """A front's time from publishing each job to its reply, at scrape time."""

    def __init__(self, durations: Durations) -> None:
        self._durations = durations

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "previewer_broker_job_duration_seconds",
            "Time from publishing a render job to its reply, as the front sees it.",
        )
        family.add_metric((), _buckets(self._durations), sum_value=self._durations.sum)
        yield family


class WorkerCollector:
    """A worker's figures at scrape time: its source cache, its renders, its jobs."""

    def __init__(
        self,
        health: Callable[[], RendererHealth],
        counters: WorkerCounters,
        connected: Callable[[], bool],
    ) -> None:
        self._health = health
        self._counters = counters
        self._connected = connected

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        size = GaugeMetricFamily(
            "previewer_cache_bytes", "Bytes held by a disk cache.", labels=("cache",)
        )
        entries = GaugeMetricFamily(
            "previewer_cache_entries", "Entries held by a disk cache.", labels=("cache",)
        )
        if health.source_cache is not None:
            size.add_metric(("source",), health.source_cache.bytes)
            entries.add_metric(("source",), health.source_cache.entries)
        yield size
        yield entries
        yield from _render_gauges(health.renders_running, health.renders_waiting)
        yield CounterMetricFamily(
            "previewer_broker_jobs_expired_total",
            "Jobs received past their deadline and dropped unrendered.",
            value=self._counters.expired,
        )
        yield CounterMetricFamily(
            "previewer_broker_redeliveries_total",
            "Jobs received with RabbitMQ's redelivered flag.",
            value=self._counters.redelivered,
        )
        yield CounterMetricFamily(
            "previewer_broker_jobs_orphaned_total",
            "Redelivered jobs dropped unrendered: the front that published them no longer waits.",
            value=self._counters.orphaned,
        )
        yield _connected(self._connected())


def _render_gauges(running: int, waiting: int) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "previewer_renders_in_progress", "Renders running on the render threads now.", value=running
    )
    yield GaugeMetricFamily(
        "previewer_renders_waiting", "Renders waiting for a render thread now.", value=waiting
    )


def _connected(connected: bool) -> Metric:
    return GaugeMetricFamily(
        "previewer_broker_connected",
        "1 while connected to RabbitMQ, else 0.",
        value=1 if connected else 0,
    )
