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
import threading
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


class HotSet:
    """The most recently used entries, kept in memory under a byte bound.

    Serves the hottest previews without a thread hop, a file read or a
    checksum. Thread-safe: filled from I/O threads, read on the event loop.
    """

    TOUCH_INTERVAL = 60.0  # seconds between recording an entry's use on disk

    def __init__(self, max_bytes: int) -> None:
        self._index = CacheIndex(max_bytes)
        self._entries: dict[str, tuple[Entry, float]] = {}  # digest -> entry, last disk touch
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._index.total_bytes

    def get(self, digest: str) -> tuple[Entry, bool] | None:
        """The entry and whether its use is due to be recorded on disk."""
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            self._index.touch(digest)
            entry, touched = found
            now = time.monotonic()
            due = now - touched >= self.TOUCH_INTERVAL
            if due:
                self._entries[digest] = (entry, now)
            return entry, due

    def add(self, digest: str, entry: Entry) -> None:
        with self._lock:
            evicted = self._index.reserve(digest, len(entry.body))
            if evicted is None:
                return
            for key in evicted:
                del self._entries[key]
            self._entries[digest] = (entry, time.monotonic())

    def discard(self, digests: list[str]) -> None:
        with self._lock:
            for digest in digests:
                if self._entries.pop(digest, None) is not None:
                    self._index.remove(digest)


class DiskCache:
    """Entries of one kind under one root, bounded by an LRU index.

    With `hot_bytes`, the most recent entries are also kept in a HotSet.
    """

    def __init__(self, name: str, storage: Storage, index: CacheIndex, hot_bytes: int = 0) -> None:
        self.name = name
        self.storage = storage
        self.index = index
        self.hot = HotSet(hot_bytes) if hot_bytes else None
        self.stats = CacheStats()
        self._failing = False

    def peek(self, digest: str) -> tuple[Entry, bool] | None:
        """Non-blocking: the entry from the hot set, and whether `record_use` is due."""
        if self.hot is None:
            return None
        found = self.hot.get(digest)
        if found is not None:
            self.index.touch(digest)
        return found

    def record_use(self, digest: str) -> None:
        """Refresh the file's mtime, the on-disk record of last use. Blocking."""
        self.storage.touch(digest)

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
            entry = self.storage.read(digest)
        except (FileNotFoundError, CorruptEntry) as exc:
            log.warning("%s cache entry %s dropped: %s", self.name, digest, exc or "missing")
            self.index.remove(digest)
            if self.hot is not None:
                self.hot.discard([digest])
            self.stats.dropped += 1
        except OSError as exc:
            log.warning("%s cache entry %s unreadable: %s", self.name, digest, exc)
        else:
            if self.hot is not None:
                self.hot.add(digest, entry)
            return entry
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
        entry = Entry.of(body, content_type)
        try:
            self._write(digest, entry, size)
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
        if self.hot is not None:
            self.hot.add(digest, entry)
        if self._failing:
            log.warning("%s cache writes work again", self.name)
            self._failing = False
        return True

    def _write(self, digest: str, entry: Entry, size: int) -> None:
        try:
            self.storage.write(digest, entry.body, entry.content_type, entry.created)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            # The disk holds less than the bound promised: make room and retry once.
            freed = self.index.evict_oldest(size, keep=digest)
            if not freed:
                raise
            self._delete(freed)
            self.storage.write(digest, entry.body, entry.content_type, entry.created)

    def _delete(self, digests: list[str]) -> None:
        if self.hot is not None:
            self.hot.discard(digests)
        for digest in digests:
            try:
                self.storage.delete(digest)
            except OSError as exc:
                log.warning("%s cache entry %s could not be deleted: %s", self.name, digest, exc)
