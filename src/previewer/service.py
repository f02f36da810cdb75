"""Orchestration: cache lookup -> fetch -> render -> store, with single flight.

`PreviewService.get(options, headers, client_address)` is what both the HTTP
server and any other front call; it never sees a framework object. Blocking
work (libvips, file I/O) runs off the event loop: renders on a bounded pool
whose queue answers 503 when full, file I/O on the default thread pool.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass

from previewer import headers as header_rules
from previewer import imaging
from previewer.cache_index import CacheIndex
from previewer.config import ImagingConfig
from previewer.errors import Overloaded
from previewer.fetch import Fetcher
from previewer.headers import Headers
from previewer.options import PreviewOptions
from previewer.storage import HEADER_SIZE, CorruptEntry, Storage, body_etag, key_digest

log = logging.getLogger(__name__)

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass
class Counters:
    """Running totals since start-up, reported by /health."""

    hits: int = 0
    misses: int = 0
    fetches: int = 0
    renders: int = 0
    stored: int = 0
    store_failures: int = 0


@dataclass(frozen=True)
class Preview:
    body: bytes
    content_type: str
    etag: str
    last_modified: float  # Unix time the preview was made
    hit: bool  # served from the disk cache
    shareable: bool  # may be stored by shared caches (and was offered to ours)


class PreviewService:
    """Makes previews, caching them on disk under an LRU byte budget."""

    def __init__(
        self,
        *,
        imaging_config: ImagingConfig,
        fetcher: Fetcher,
        storage: Storage,
        index: CacheIndex,
        render_executor: Executor,
    ) -> None:
        self.config = imaging_config
        self.fetcher = fetcher
        self.storage = storage
        self.index = index
        self._executor = render_executor
        self._flights: dict[str, asyncio.Future[Preview]] = {}
        self._renders = 0  # running or waiting for a render thread
        self._max_renders = imaging_config.workers + imaging_config.queue_size
        self._storage_failing = False
        self.counters = Counters()

    async def start(self) -> None:
        """Rebuild the LRU index from the cache directory, oldest use first."""
        started = time.perf_counter()
        scanned = await asyncio.to_thread(self.storage.scan)
        evicted = self.index.load((entry.digest, entry.size) for entry in scanned)
        await asyncio.to_thread(self._delete, evicted)
        log.info(
            "cache loaded: %d entries, %d bytes (%d evicted to fit the bounds) in %.2fs",
            len(self.index),
            self.index.total_bytes,
            len(evicted),
            time.perf_counter() - started,
        )

    @property
    def renders_in_progress(self) -> int:
        return self._renders

    async def get(
        self, options: PreviewOptions, headers: Headers, client_address: str | None
    ) -> Preview:
        digest = key_digest(options.cache_key())
        cached = await self._lookup(digest)
        if cached is not None:
            self.counters.hits += 1
            return cached
        self.counters.misses += 1
        flight_key = _flight_key(digest, headers)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(self._produce(options, digest, headers, client_address))
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(flight_key, None))
        # shield: a waiter that goes away must not cancel the others' render
        return await asyncio.shield(flight)

    async def _lookup(self, digest: str) -> Preview | None:
        if not self.index.touch(digest):
            return None
        try:
            entry = await asyncio.to_thread(self.storage.read, digest)
        except (FileNotFoundError, CorruptEntry) as exc:
            log.warning("cache entry %s dropped: %s", digest, exc or type(exc).__name__)
            self.index.remove(digest)
            return None
        except OSError as exc:
            log.warning("cache entry %s unreadable: %s", digest, exc)
            return None
        return Preview(
            body=entry.body,
            content_type=entry.content_type,
            etag=entry.etag,
            last_modified=entry.created,
            hit=True,
            shareable=True,
        )

    async def _produce(
        self, options: PreviewOptions, digest: str, headers: Headers, client_address: str | None
    ) -> Preview:
        self.counters.fetches += 1
        fetched = await self.fetcher.fetch(options.source, headers, client_address)
        shareable = header_rules.is_shareable(headers, fetched.headers)
        job = imaging.RenderJob(
            width=options.width,
            height=options.height,
            gravity=options.gravity,
            quality=options.quality,
            max_pixels=self.config.max_source_pixels,
        )
        rendered = await self._render(fetched.body, job)
        if shareable:
            await asyncio.to_thread(self._store, digest, rendered.body, rendered.content_type)
        return Preview(
            body=rendered.body,
            content_type=rendered.content_type,
            etag=body_etag(rendered.body),
            last_modified=time.time(),
            hit=False,
            shareable=shareable,
        )

    async def _render(self, body: bytes, job: imaging.RenderJob) -> imaging.Rendered:
        if self._renders >= self._max_renders:
            raise Overloaded(detail=f"{self._renders} renders running or queued")
        self._renders += 1
        self.counters.renders += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, imaging.render, body, job)
        finally:
            self._renders -= 1

    def _store(self, digest: str, body: bytes, content_type: str) -> None:
        """Evict to make room, then write. Runs on a thread."""
        size = HEADER_SIZE + len(body)
        evicted = self.index.reserve(digest, size)
        if evicted is None:
            log.info("preview %s (%d bytes) exceeds the whole cache; not stored", digest, len(body))
            return
        self._delete(evicted)
        try:
            try:
                self.storage.write(digest, body, content_type)
            except OSError as exc:
                if exc.errno not in _DISK_FULL:
                    raise
                # The disk holds less than the bound promised: make room and retry once.
                freed = self.index.evict_oldest(size, keep=digest)
                if not freed:
                    raise
                self._delete(freed)
                self.storage.write(digest, body, content_type)
        except OSError as exc:
            self.index.remove(digest)
            self.counters.store_failures += 1
            if not self._storage_failing:
                log.error("cache write failed, serving uncached until it works again: %s", exc)
            self._storage_failing = True
            return
        self.counters.stored += 1
        if self._storage_failing:
            log.warning("cache writes work again")
            self._storage_failing = False

    def _delete(self, digests: list[str]) -> None:
        for digest in digests:
            try:
                self.storage.delete(digest)
            except OSError as exc:
                log.warning("cache entry %s could not be deleted: %s", digest, exc)


def _flight_key(digest: str, headers: Headers) -> str:
    """Requests share a flight only when they carry the same credentials.

    A response to one user's Authorization or Cookie may be private to that
    user, so it is never handed to a request with other credentials.
    """
    credentials = [
        f"{name.lower()}:{value}"
        for name, value in headers
        if name.lower() in header_rules.CREDENTIAL_HEADERS
    ]
    if not credentials:
        return digest
    return digest + ":" + hashlib.sha256("\n".join(credentials).encode()).hexdigest()
