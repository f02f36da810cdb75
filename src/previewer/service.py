"""Orchestration: preview cache -> source cache -> fetch -> render -> store.

`PreviewService.get(options, headers, client_address)` is what both the HTTP
server and any other front call; it never sees a framework object. Blocking
work runs off the event loop: renders on a bounded pool whose queue answers
503 at once when full, file I/O on the default thread pool.

Two single flights keep concurrent work from repeating: one per preview
(50 requests for one uncached preview make one render) and one per source
(a page asking for four sizes of one image makes one fetch). Both share only
between requests that carry the same credentials.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass

from previewer import headers as header_rules
from previewer import imaging
from previewer.cache import DiskCache
from previewer.config import ImagingConfig
from previewer.errors import Overloaded
from previewer.fetch import Fetcher
from previewer.flight import SingleFlight
from previewer.headers import Headers
from previewer.options import PreviewOptions, SourceURL
from previewer.storage import Entry, key_digest

log = logging.getLogger(__name__)

SOURCE_CONTENT_TYPE = "application/octet-stream"


@dataclass
class Counters:
    """Running totals since start-up, reported by /health."""

    hits: int = 0
    misses: int = 0
    fetches: int = 0
    source_hits: int = 0
    renders: int = 0


@dataclass(frozen=True)
class Preview:
    body: bytes
    content_type: str
    etag: str
    last_modified: float  # Unix time the preview was made
    hit: bool  # served from the disk cache
    shareable: bool  # may be stored by shared caches (and was offered to ours)


@dataclass
class _Source:
    body: bytes
    shareable: bool
    digest: str
    kept: bool  # in the source cache already (or being written there)


class PreviewService:
    """Makes previews, caching them (and optionally their sources) on disk."""

    def __init__(
        self,
        *,
        imaging_config: ImagingConfig,
        fetcher: Fetcher,
        previews: DiskCache,
        sources: DiskCache | None,
        render_executor: Executor,
    ) -> None:
        self.config = imaging_config
        self.fetcher = fetcher
        self.previews = previews
        self.sources = sources
        self.counters = Counters()
        self._executor = render_executor
        self._preview_flights = SingleFlight[Preview]()
        self._source_flights = SingleFlight[_Source]()
        self._renders = 0  # running or waiting for a render thread
        self._renders_lock = threading.Lock()
        self._max_renders = imaging_config.workers + imaging_config.queue_size
        self._background: set[asyncio.Future[object]] = set()
        self._writing_sources: dict[str, bytes] = {}  # digest -> body being written
        self._loading: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start rebuilding the LRU indexes from the cache directories, in the background.

        The service serves at once: until an index is loaded, a hit is
        looked up on disk directly, and new entries are stored once it is.
        """
        self._loading = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        for cache in (self.previews, self.sources):
            if cache is None:
                continue
            try:
                await asyncio.to_thread(cache.load)
            except Exception:  # a bug; the cache goes on counting only new entries
                log.exception("%s cache: loading the index failed", cache.name)

    async def wait_loaded(self) -> None:
        """Wait until both indexes are loaded (and so every file on disk is counted)."""
        if self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)

    async def stop(self) -> None:
        """Write to disk what only memory knows: the uses of hot previews."""
        await self.wait_loaded()
        recorded = await asyncio.to_thread(self.previews.record_hot_uses)
        log.debug("recorded %d uses of hot previews", recorded)

    @property
    def renders_in_progress(self) -> int:
        return self._renders

    @property
    def abandoned(self) -> int:
        return self._preview_flights.abandoned + self._source_flights.abandoned

    def cached(self, options: PreviewOptions) -> Preview | None:
        """The preview from the in-memory hot set, or None. Never blocks.

        The hit path that needs no thread, no file and no deadline: the HTTP
        front tries it before it arms the request timeout.
        """
        digest = _digest(options)
        hot = self.previews.peek(digest)
        if hot is None:
            return None
        entry, record_use = hot
        if record_use:
            self._in_background(asyncio.to_thread(self.previews.record_use, digest))
        return self._hit(entry)

    async def get(
        self, options: PreviewOptions, headers: Headers, client_address: str | None
    ) -> Preview:
        found = self.cached(options)
        if found is not None:
            return found
        digest = _digest(options)
        entry = await asyncio.to_thread(self.previews.get, digest)
        if entry is not None:
            return self._hit(entry)
        self.counters.misses += 1
        return await self._preview_flights.run(
            _flight_key(digest, headers),
            lambda abandoned: self._produce(options, digest, headers, client_address, abandoned),
        )

    def _hit(self, entry: Entry) -> Preview:
        self.counters.hits += 1
        return Preview(
            body=entry.body,
            content_type=entry.content_type,
            etag=entry.etag,
            last_modified=entry.created,
            hit=True,
            shareable=True,
        )

    async def _produce(
        self,
        options: PreviewOptions,
        digest: str,
        headers: Headers,
        client_address: str | None,
        abandoned: threading.Event,
    ) -> Preview:
        source = await self._source(options.source, headers, client_address)
        job = imaging.RenderJob(
            width=options.width,
            height=options.height,
            gravity=options.gravity,
            quality=options.quality,
            max_pixels=self.config.max_source_pixels,
        )
        rendered = await self._render(source.body, job, abandoned)
        if not rendered.complete:
            log.warning(
                "source truncated, previewed as far as it decodes: %s (source %s)",
                rendered.problem,
                options.source,
            )
        # an incomplete (truncated) source may be a transfer cut short: never keep it
        shareable = source.shareable and rendered.complete
        if shareable and not source.kept and self.sources is not None:
            self._keep_source(source)
        entry = Entry.of(rendered.body, rendered.content_type)
        if shareable:
            await self.wait_loaded()
            await asyncio.to_thread(self.previews.put, digest, entry)
        return Preview(
            body=entry.body,
            content_type=entry.content_type,
            etag=entry.etag,
            last_modified=entry.created,
            hit=False,
            shareable=shareable,
        )

    async def _source(
        self, source: SourceURL, headers: Headers, client_address: str | None
    ) -> _Source:
        digest = key_digest(f"source|v1|{source}")
        writing = self._writing_sources.get(digest)
        if writing is not None:
            self.counters.source_hits += 1
            return _Source(writing, shareable=True, digest=digest, kept=True)
        if self.sources is not None:
            entry = await asyncio.to_thread(self.sources.get, digest)
            if entry is not None:
                self.counters.source_hits += 1
                return _Source(entry.body, shareable=True, digest=digest, kept=True)
        return await self._source_flights.run(
            _flight_key(digest, headers),
            lambda _: self._fetch(source, digest, headers, client_address),
        )

    async def _fetch(
        self, source: SourceURL, digest: str, headers: Headers, client_address: str | None
    ) -> _Source:
        self.counters.fetches += 1
        fetched = await self.fetcher.fetch(source, headers, client_address)
        return _Source(fetched.body, fetched.shareable, digest=digest, kept=False)

    def _keep_source(self, source: _Source) -> None:
        """Write a source to the source cache in the background.

        The response need not wait for the write; until it lands, the body
        stays reachable in memory so that the next size finds it anyway.
        """
        assert self.sources is not None
        source.kept = True
        self._writing_sources[source.digest] = source.body
        task = self._in_background(self._put_source(source))
        task.add_done_callback(lambda _: self._writing_sources.pop(source.digest, None))

    async def _put_source(self, source: _Source) -> None:
        sources = self.sources
        assert sources is not None
        await self.wait_loaded()

        def store() -> None:  # on a thread: hashing megabytes would block the loop
            sources.put(source.digest, Entry.of(source.body, SOURCE_CONTENT_TYPE))

        await asyncio.to_thread(store)

    def _in_background(self, work: Coroutine[object, None, object]) -> asyncio.Future[object]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _render(
        self, body: bytes, job: imaging.RenderJob, abandoned: threading.Event
    ) -> imaging.Rendered:
        """Run one render on the pool, or refuse at once when the queue is full.

        The count drops when the thread really finishes (or the queued job is
        dropped), not when the awaiting request gives up, so admission always
        reflects the work the pool still has.
        """
        with self._renders_lock:
            if self._renders >= self._max_renders:
                raise Overloaded(detail=f"{self._renders} renders running or queued")
            self._renders += 1
        self.counters.renders += 1
        future = self._executor.submit(imaging.render, body, job, abandoned.is_set)
        future.add_done_callback(self._render_finished)
        return await asyncio.wrap_future(future)

    def _render_finished(self, _: object) -> None:
        with self._renders_lock:
            self._renders -= 1


@functools.lru_cache(maxsize=1024)
def _digest(options: PreviewOptions) -> str:
    """The cache file name of a preview; memoised, as hits repeat the same options."""
    return key_digest(options.cache_key())


def _flight_key(digest: str, headers: Headers) -> str:
    """Requests share a flight only when they carry the same credentials.

    A response to one user's Authorization or Cookie may be private to that
    user, so it is never handed to a request with other credentials.
    """
    credentials = [f"{name.lower()}:{value}" for name, value in header_rules.credentials(headers)]
    if not credentials:
        return digest
    return digest + ":" + hashlib.sha256("\n".join(credentials).encode()).hexdigest()
