"""The render stage: options and request headers in, preview bytes out.

`Renderer` is the seam between the service (preview cache, single flight,
the request deadline) and the work of a miss: get the source (source cache,
single flight per source, fetch under the source policy), render it, and
say whether the result may be shared and whether the source was complete.
That is everything a remote worker would take over; a job carries the
options, the forwarded headers, the client address and the request id, a
reply the body, content type, `shareable` and `complete`.

`EmbeddedRenderer`, the default and only implementation here, does it in
this process: libvips on a bounded thread pool behind `Admission`. It
reports the queue wait, fetch and render phases of each miss and the outcome
of each origin fetch to a `metrics.Recorder`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from previewer.cache.disk import CacheHealth, DiskCache
from previewer.cache.flight import SingleFlight
from previewer.cache.storage import Entry, key_digest
from previewer.config.settings import ImagingConfig
from previewer.errors import PreviewError
from previewer.fetch import headers as header_rules
from previewer.fetch.fetcher import Fetcher
from previewer.fetch.headers import Headers
from previewer.observe.recorder import NoMetrics, Recorder, fetch_outcome
from previewer.options import PreviewOptions, SourceURL
from previewer.render import imaging
from previewer.render.admission import Admission

log = logging.getLogger(__name__)

SOURCE_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class RenderJob:
    """One miss to render: what a remote worker would receive."""

    options: PreviewOptions
    headers: Headers
    client_address: str | None
    deadline: float | None = None  # Unix time after which nobody waits for the answer
    request_id: str | None = None  # X-Request-Id: logged with the job, sent to the origin


@dataclass(frozen=True)
class RenderResult:
    """What a render gives back: what a remote worker would reply."""

    body: bytes
    content_type: str
    shareable: bool  # the origin's answer may be stored by shared caches
    complete: bool  # the whole source was decoded (a truncated one is never kept)


@dataclass(frozen=True)
class BrokerHealth:
    """Broker mode, as a front sees it."""

    connected: bool
    consumers: int | None  # workers consuming the job queue, as last seen; None: unknown
    waiting: int  # jobs published and not yet answered
    published: int
    replies: int
    unexpected_replies: int  # duplicates and late answers, dropped
    refused_full: int  # the queue was at its bound: 503
    refused_unavailable: int  # no broker connection or no worker: 503
    expired: int = 0  # requests that stopped waiting for a reply (deadline, or abandoned)
    queue_depth: int | None = None  # jobs ready in the queue, as last seen; None: unknown


@dataclass(frozen=True)
class RendererHealth:
    renders_running: int
    renders_waiting: int
    fetches: int
    source_hits: int
    renders: int
    abandoned: int  # source fetches dropped because every request had gone
    source_cache: CacheHealth | None
    broker: BrokerHealth | None = None  # broker mode only


class Renderer(Protocol):
    """The render stage, as the service sees it."""

    async def load(self) -> None:
        """Get ready in the background while the service already serves (an index, a connection)."""

    async def render(self, job: RenderJob, abandoned: threading.Event) -> RenderResult:
        """Render one preview; stop early once `abandoned` is set. Raises PreviewError."""

    def health(self) -> RendererHealth:
        """A snapshot for /health."""


@dataclass
class _Source:
    body: bytes
    shareable: bool
    digest: str
    kept: bool  # in the source cache already (or being written there)


class EmbeddedRenderer:
    """Fetch, source cache and libvips in this process, on a bounded thread pool."""

    def __init__(
        self,
        *,
        config: ImagingConfig,
        fetcher: Fetcher,
        sources: DiskCache,
        executor: Executor,
        metrics: Recorder | None = None,
    ) -> None:
        self._config = config
        self._metrics: Recorder = metrics or NoMetrics()
        self._fetcher = fetcher
        self._sources = sources
        self._executor = executor
        self._admission = Admission(config.workers, config.queue_size)
        self._flights = SingleFlight[_Source]()
        self._background: set[asyncio.Future[object]] = set()
        self._fetches = 0
        self._source_hits = 0
        self._renders = 0
        self._loaded = asyncio.Event()

    async def load(self) -> None:
        try:
            await asyncio.to_thread(self._sources.load)
        finally:
            self._loaded.set()

    def health(self) -> RendererHealth:
        admission = self._admission.state()
        return RendererHealth(
            renders_running=admission.running,
            renders_waiting=admission.waiting,
            fetches=self._fetches,
            source_hits=self._source_hits,
            renders=self._renders,
            abandoned=self._flights.abandoned,
            source_cache=self._sources.health() if self._sources.enabled else None,
        )

    async def render(self, job: RenderJob, abandoned: threading.Event) -> RenderResult:
        options = job.options
        source = await self._source(options.source, job)
        rendered = await self._render(
            source.body,
            imaging.RenderJob(
                width=options.width,
                height=options.height,
                gravity=options.gravity,
                quality=options.quality,
                max_pixels=self._config.max_source_pixels,
                output_format=options.output_format,
                effort=options.effort,
                operation=options.operation,
            ),
            abandoned,
        )
        if not rendered.complete:  # one line per render, not one per libvips warning
            log.warning(
                "source truncated, previewed as far as it decodes: %s (source %s)",
                rendered.problem,
                options.source,
            )
        # an incomplete (truncated) source may be a transfer cut short: never keep it
        if source.shareable and rendered.complete and not source.kept:
            await self._keep(source)
        return RenderResult(
            rendered.body, rendered.content_type, source.shareable, rendered.complete
        )

    async def _source(self, source: SourceURL, job: RenderJob) -> _Source:
        headers = job.headers
        digest = key_digest(f"source|v1|{source}")
        if self._sources.enabled:
            held = self._sources.peek(digest)
            entry = held[0] if held else await asyncio.to_thread(self._sources.get, digest)
            if entry is not None:
                self._source_hits += 1
                return _Source(entry.body, shareable=True, digest=digest, kept=True)
        return await self._flights.run(
            flight_key(digest, headers),
            lambda _: self._fetch(source, digest, job),
        )

    async def _fetch(self, source: SourceURL, digest: str, job: RenderJob) -> _Source:
        self._fetches += 1
        started = time.perf_counter()
        try:
            fetched = await self._fetcher.fetch(
                source, job.headers, job.client_address, job.request_id
            )
        except PreviewError as exc:
            self._metrics.fetch(fetch_outcome(exc), 0)
            raise
        self._metrics.phase("fetch", time.perf_counter() - started)
        self._metrics.fetch("ok", len(fetched.body))
        return _Source(fetched.body, fetched.shareable, digest=digest, kept=False)

    async def _keep(self, source: _Source) -> None:
        """Make a source pending in the source cache now; write it in the background.

        The response need not wait for the write; the next size finds the
        pending entry in the cache all the same. Hashing megabytes would
        block the event loop, so the entry is made on a thread.
        """
        source.kept = True
        if not self._sources.fits(len(source.body)):  # off, or larger than its share
            return
        entry = await asyncio.to_thread(Entry.of, source.body, SOURCE_CONTENT_TYPE)
        self._sources.hold(source.digest, entry)
        self._in_background(self._put_source(source.digest, entry))

    async def _put_source(self, digest: str, entry: Entry) -> None:
        await self._loaded.wait()  # the source index counts every file first
        await asyncio.to_thread(self._sources.put, digest, entry)

    def _in_background(self, work: Coroutine[object, None, object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _render(
        self, body: bytes, job: imaging.RenderJob, abandoned: threading.Event
    ) -> imaging.Rendered:
        """Run one render on the pool, or refuse at once (503) when the queue is full."""
        ticket = self._admission.admit()
        self._renders += 1
        metrics = self._metrics
        admitted = time.perf_counter()

        def run() -> imaging.Rendered:
            ticket.start()
            started = time.perf_counter()
            metrics.phase("queue", started - admitted)
            try:
                return imaging.render(body, job, abandoned.is_set)
            finally:
                metrics.phase("render", time.perf_counter() - started)

        future = self._executor.submit(run)
        future.add_done_callback(lambda _: ticket.finish())
        return await asyncio.wrap_future(future)


def flight_key(digest: str, headers: Headers) -> str:
    """Requests share a flight only when they carry the same credentials.

    A response to one user's Authorization or Cookie may be private to that
    user, so it is never handed to a request with other credentials.
    """
    credentials = [f"{name.lower()}:{value}" for name, value in header_rules.credentials(headers)]
    if not credentials:
        return digest
    return digest + ":" + hashlib.sha256("\n".join(credentials).encode()).hexdigest()
