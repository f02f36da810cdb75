"""A bounded on-disk LRU cache: the index's accounting applied to storage's files.

Blocking (file I/O); the service calls it from threads. previewer keeps two:
previews, and (optionally) the source images they were made from.

Policy lives here: room is made before a file is written, so the bytes on
disk never exceed the bound; a damaged entry is dropped, never returned; a
full disk evicts and retries once; a failing directory is logged once per
fault, not once per request, and the cache goes on without storing.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass

from previewer.cache_index import CacheIndex
from previewer.storage import HEADER_SIZE, CorruptEntry, Entry, Storage

log = logging.getLogger(__name__)

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass
class CacheStats:
    stored: int = 0
    store_failures: int = 0
    dropped: int = 0  # entries found missing or damaged on read


class DiskCache:
    """Entries of one kind under one root, bounded by an LRU index."""

    def __init__(self, name: str, storage: Storage, index: CacheIndex) -> None:
        self.name = name
        self.storage = storage
        self.index = index
        self.stats = CacheStats()
        self._failing = False

    def load(self) -> None:
        """Rebuild the index from the files on disk, oldest use first."""
        started = time.perf_counter()
        scanned = self.storage.scan()
        evicted = self.index.load((entry.digest, entry.size) for entry in scanned)
        self._delete(evicted)
        log.info(
            "%s cache loaded: %d entries, %d bytes (%d evicted to fit the bounds) in %.2fs",
            self.name,
            len(self.index),
            self.index.total_bytes,
            len(evicted),
            time.perf_counter() - started,
        )

    def get(self, digest: str) -> Entry | None:
        """The verified entry, refreshed as most recently used; None on a miss."""
        if not self.index.touch(digest):
            return None
        try:
            return self.storage.read(digest)
        except (FileNotFoundError, CorruptEntry) as exc:
            log.warning("%s cache entry %s dropped: %s", self.name, digest, exc or "missing")
            self.index.remove(digest)
            self.stats.dropped += 1
        except OSError as exc:
            log.warning("%s cache entry %s unreadable: %s", self.name, digest, exc)
        return None

    def put(self, digest: str, body: bytes, content_type: str) -> bool:
        """Store an entry, evicting to make room first; False when not stored."""
        size = HEADER_SIZE + len(body)
        evicted = self.index.reserve(digest, size)
        if evicted is None:
            log.info(
                "%s %s (%d bytes) exceeds the whole cache: not stored", self.name, digest, size
            )
            return False
        self._delete(evicted)
        try:
            self._write(digest, body, content_type, size)
        except OSError as exc:
            self.index.remove(digest)
            self.stats.store_failures += 1
            if not self._failing:
                log.error(
                    "%s cache write failed; serving uncached until it works: %s", self.name, exc
                )
            self._failing = True
            return False
        self.stats.stored += 1
        if self._failing:
            log.warning("%s cache writes work again", self.name)
            self._failing = False
        return True

    def _write(self, digest: str, body: bytes, content_type: str, size: int) -> None:
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

    def _delete(self, digests: list[str]) -> None:
        for digest in digests:
            try:
                self.storage.delete(digest)
            except OSError as exc:
                log.warning("%s cache entry %s could not be deleted: %s", self.name, digest, exc)
