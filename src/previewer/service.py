"""Orchestration of one request: hot set -> preview cache -> single flight -> render -> store.

`PreviewService.get(options, headers, client_address, timeout)` is the whole
request, for the HTTP server and any other front; it never sees a framework
object. A hit from the memory hot set is answered at once, on the event
loop, with no deadline armed; everything slower (the disk lookup, waiting
for a render) runs under `timeout`.

Concurrent requests for one uncached preview share one render (a single
flight, only between requests that carry the same credentials). The render
itself (source cache, fetch, libvips) sits behind `renderer.Renderer`;
blocking file I/O runs on the default thread pool. `health()` returns what
/health reports, as a value; `readiness()` what /ready reports: whether the
instance can take traffic now, and if not, why. The time each preview write
takes is reported to a `metrics.Recorder` (the phase `store` of a miss).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass

from previewer.cache.disk import CacheHealth, DiskCache
from previewer.cache.flight import SingleFlight
from previewer.cache.storage import Entry, key_digest
from previewer.errors import RequestTimeout
from previewer.fetch.headers import Headers
from previewer.observe.recorder import NoMetrics, Recorder
from previewer.options import PreviewOptions
from previewer.render.renderer import BrokerHealth, Renderer, RenderJob, flight_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preview:
    entry: Entry  # body, content type, creation time, checksum
    hit: bool  # served from the cache
    shareable: bool  # may be stored by shared caches (and was offered to ours)

    @property
    def body(self) -> bytes:
        return self.entry.body

    @property
    def content_type(self) -> str:
        return self.entry.content_type

    @property
    def etag(self) -> str:
        return self.entry.etag

    @property
    def last_modified(self) -> float:
        """Unix time the preview was made."""
        return self.entry.created


@dataclass(frozen=True)
class DiskUsage:
    """The one disk budget (`--cache-size`): previews and sources together."""

    bytes: int
    max_bytes: int


@dataclass(frozen=True)
class Counters:
    """Running totals since start-up."""

    hits: int
    misses: int
    fetches: int
    source_hits: int
    renders: int
    stored: int
    abandoned: int


@dataclass(frozen=True)
class Health:
    """What /health reports: a snapshot, taken without touching the caches' files."""

    status: str
    disk: DiskUsage
    cache: CacheHealth
    source_cache: CacheHealth | None  # None: the source cache is off
    renders_in_progress: int  # running or waiting for a render slot
    renders_waiting: int
    counters: Counters
    broker: BrokerHealth | None = None  # broker mode only


@dataclass(frozen=True)
class Readiness:
    """What /ready reports: ready when nothing is in `reasons`."""

    reasons: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.reasons


class PreviewService:
    """Serves previews from the preview cache, rendering and storing each miss."""

    def __init__(
        self,
        *,
        previews: DiskCache,
        renderer: Renderer,
        disk_budget: int,
        metrics: Recorder | None = None,
    ) -> None:
        self._previews = previews
        self._renderer = renderer
        self._disk_budget = disk_budget
        self._metrics: Recorder = metrics or NoMetrics()
        self._draining = False
        self._flights = SingleFlight[Preview]()
        self._background: set[asyncio.Future[object]] = set()
        self._loading: asyncio.Future[tuple[None, None]] | None = None
        self._previews_loaded = asyncio.Event()
        self._hits = 0
        self._misses = 0

    async def start(self) -> None:
        """Start loading the indexes in the background; the service serves at once.

        Until the preview index is loaded, a hit not yet indexed is read
        from its file directly, and a miss is rendered and answered without
        waiting; only its write waits for the load.
        """
        self._loading = asyncio.gather(self._load_previews(), self._renderer.load())

    async def _load_previews(self) -> None:
        try:
            await asyncio.to_thread(self._previews.load)
        finally:
            self._previews_loaded.set()

    async def wait_loaded(self) -> None:
        """Wait until every index is loaded (and so every file on disk is counted)."""
        if self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)

    def drain(self) -> None:
        """Stop taking traffic: /ready answers 503 from now on; requests still get answers."""
        self._draining = True

    def readiness(self) -> Readiness:
        """Can this instance take traffic? Cheap enough for a probe every second or two."""
        reasons = []
        if self._draining:
            reasons.append("shutting_down")
        if self._loading is None:
            reasons.append("index_load_not_started")
        if not _writable(self._previews.storage.root):
            reasons.append("cache_dir_not_writable")
        broker = self._renderer.health().broker
        if broker is not None and not broker.connected:
            reasons.append("broker_disconnected")
        return Readiness(tuple(reasons))

    async def stop(self) -> None:
        """Write what only memory knows: pending previews and the uses of hot ones."""
        await self.wait_loaded()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        recorded = await asyncio.to_thread(self._previews.record_hot_uses)
        log.debug("recorded %d uses of hot previews", recorded)

    def health(self) -> Health:
        cache = self._previews.health()
        rendering = self._renderer.health()
        sources = rendering.source_cache
        return Health(
            status="ok",
            disk=DiskUsage(
                bytes=cache.bytes + (sources.bytes if sources else 0),
                max_bytes=self._disk_budget,
            ),
            cache=cache,
            source_cache=sources,
            renders_in_progress=rendering.renders_running + rendering.renders_waiting,
            renders_waiting=rendering.renders_waiting,
            counters=Counters(
                hits=self._hits,
                misses=self._misses,
                fetches=rendering.fetches,
                source_hits=rendering.source_hits,
                renders=rendering.renders,
                stored=cache.stored,
                abandoned=self._flights.abandoned + rendering.abandoned,
            ),
            broker=rendering.broker,
        )

    async def get(
        self,
        options: PreviewOptions,
        headers: Iterable[tuple[str, str]],
        client_address: str | None,
        time_limit: float | None = None,
        request_id: str | None = None,
    ) -> Preview:
        """The preview for `options`: from memory at once, else within `time_limit` seconds.

        Raises RequestTimeout when the slow path (disk lookup, render) passes
        `time_limit`, and any other PreviewError the render raises. `headers`
        (the client's, in order, repeats included) are read only on that
        path: a hit from memory never copies them. `request_id` travels with
        the render job (to the origin, and to a worker in broker mode).
        """
        digest = _digest(options)
        hot = self._previews.peek(digest)
        if hot is not None:
            entry, record_use = hot
            if record_use:
                self._in_background(asyncio.to_thread(self._previews.record_use, digest))
            self._hits += 1
            return Preview(entry, hit=True, shareable=True)
        if time_limit is None:
            return await self._lookup(options, digest, headers, client_address, None, request_id)
        deadline = time.time() + time_limit
        try:
            async with asyncio.timeout(time_limit):
                return await self._lookup(
                    options, digest, headers, client_address, deadline, request_id
                )
        except TimeoutError:
            raise RequestTimeout(detail=f"no preview within {time_limit}s") from None

    async def _lookup(
        self,
        options: PreviewOptions,
        digest: str,
        client_headers: Iterable[tuple[str, str]],
        client_address: str | None,
        deadline: float | None,
        request_id: str | None,
    ) -> Preview:
        headers: Headers = list(client_headers)
        entry = await asyncio.to_thread(self._previews.get, digest)
        if entry is not None:
            self._hits += 1
            return Preview(entry, hit=True, shareable=True)
        self._misses += 1
        job = RenderJob(options, headers, client_address, deadline, request_id)
        return await self._flights.run(
            flight_key(digest, headers), lambda abandoned: self._produce(job, digest, abandoned)
        )

    async def _produce(self, job: RenderJob, digest: str, abandoned: threading.Event) -> Preview:
        rendered = await self._renderer.render(job, abandoned)
        # an incomplete (truncated) source may be a transfer cut short: never keep it
        shareable = rendered.shareable and rendered.complete
        entry = Entry.of(rendered.body, rendered.content_type)
        if shareable:
            if self._previews_loaded.is_set():
                await self._store(digest, entry)
            else:  # answer now; the write waits until every file on disk is counted
                self._previews.hold(digest, entry)
                self._in_background(self._put_when_loaded(digest, entry))
        return Preview(entry, hit=False, shareable=shareable)

    async def _put_when_loaded(self, digest: str, entry: Entry) -> None:
        await self._previews_loaded.wait()
        await self._store(digest, entry)

    async def _store(self, digest: str, entry: Entry) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(self._previews.put, digest, entry)
        self._metrics.phase("store", time.perf_counter() - started)

    def _in_background(self, work: Coroutine[object, None, object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _writable(directory: os.PathLike[str]) -> bool:
    """May this process create files in `directory`, or create it? (One or two stat calls.)"""
    path = os.fspath(directory)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


@functools.lru_cache(maxsize=1024)
def _digest(options: PreviewOptions) -> str:
    """The cache file name of a preview; memoised, as hits repeat the same options."""
    return key_digest(options.cache_key())
