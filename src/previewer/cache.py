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


@dataclass
class _Hot:
    entry: Entry
    used: float  # wall-clock time of the last use
    recorded: float  # the last use written to the file's mtime


class HotSet:
    """The most recently used entries, kept in memory under a byte bound.

    Serves the hottest previews without a thread hop, a file read or a
    checksum. Thread-safe: filled from I/O threads, read on the event loop.

    A use is written to the file's mtime (the on-disk LRU order) at most once
    per TOUCH_INTERVAL per entry; `unrecorded` lists the uses not yet
    written, so that a clean stop can write them all.
    """

    TOUCH_INTERVAL = 60.0  # seconds between recording an entry's use on disk

    def __init__(self, max_bytes: int) -> None:
        self._index = CacheIndex(max_bytes)
        self._entries: dict[str, _Hot] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._index.total_bytes

    def get(self, digest: str) -> tuple[Entry, bool] | None:
        """The entry and whether its use is due to be recorded on disk."""
        with self._lock:
            hot = self._entries.get(digest)
            if hot is None:
                return None
            self._index.touch(digest)
            hot.used = time.time()
            due = hot.used - hot.recorded >= self.TOUCH_INTERVAL
            if due:
                hot.recorded = hot.used
            return hot.entry, due

    def add(self, digest: str, entry: Entry) -> None:
        with self._lock:
            evicted = self._index.reserve(digest, len(entry.body))
            if evicted is None:
                return
            for key in evicted:
                del self._entries[key]
            now = time.time()
            self._entries[digest] = _Hot(entry, used=now, recorded=now)

    def discard(self, digests: list[str]) -> None:
        with self._lock:
            for digest in digests:
                if self._entries.pop(digest, None) is not None:
                    self._index.remove(digest)

    def unrecorded(self) -> list[tuple[str, float]]:
        """(digest, time of last use) of each use not yet on disk; marks them recorded."""
        with self._lock:
            out = []
            for digest, hot in self._entries.items():
                if hot.used > hot.recorded:
                    out.append((digest, hot.used))
                    hot.recorded = hot.used
            return out


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
        # Set once `load` has rebuilt the index. Until then a file on disk may
        # be missing from the index: `get` looks for it directly, and `put`
        # waits, so that the bound is never exceeded by files not yet counted.
        self.loaded = threading.Event()

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

    def record_hot_uses(self) -> int:
        """Write every use the hot set has not yet written to disk. Blocking.

        Called at a clean stop, so that the LRU order rebuilt at the next
        start includes the hits served from memory. Returns the count.
        """
        if self.hot is None:
            return 0
        uses = self.hot.unrecorded()
        for digest, used in uses:
            try:
                self.storage.touch(digest, used)
            except OSError as exc:
                log.warning("%s cache: use of %s not recorded: %s", self.name, digest, exc)
        return len(uses)

    def load(self) -> None:
        """Rebuild the index from the files on disk, oldest use first. Blocking.

        The service runs this in the background while it already serves; a
        failed scan leaves the index empty and is logged, and the cache then
        only counts what it writes.
        """
        started = time.perf_counter()
        try:
            scanned = self.storage.scan()
            evicted = self.index.load((entry.digest, entry.size) for entry in scanned)
            self._delete(evicted)
        except OSError as exc:
            log.error("%s cache: could not scan %s: %s", self.name, self.storage.root, exc)
            return
        finally:
            self.loaded.set()
        log.info(
            "%s cache loaded: %d entries, %d bytes (%d evicted to fit the bounds) in %.2fs",
            self.name,
            len(self.index),
            self.index.total_bytes,
            len(evicted),
            time.perf_counter() - started,
        )

    def get(self, digest: str) -> Entry | None:
        """The verified entry, refreshed as most recently used; None on a miss.

        While the index is still loading, an entry it does not list yet may
        be on disk all the same: the file is looked for either way.
        """
        indexed = self.index.touch(digest)
        if not indexed and self.loaded.is_set():
            return None
        try:
            entry = self.storage.read(digest)  # deletes a damaged file itself
        except FileNotFoundError:
            if indexed:
                self._drop(digest, "missing")
        except CorruptEntry as exc:
            self._drop(digest, str(exc))
        except OSError as exc:
            log.warning("%s cache entry %s unreadable: %s", self.name, digest, exc)
        else:
            if self.hot is not None:
                self.hot.add(digest, entry)
            return entry
        return None

    def _drop(self, digest: str, why: str) -> None:
        log.warning("%s cache entry %s dropped: %s", self.name, digest, why)
        self.index.remove(digest)
        if self.hot is not None:
            self.hot.discard([digest])
        self.stats.dropped += 1

    def put(self, digest: str, entry: Entry) -> bool:
        """Store an entry, evicting to make room first; False when not stored.

        Only after `load`: before it, files on disk are not yet counted and
        the bound could not be kept (the service waits for the load).
        """
        if not self.loaded.is_set():
            raise RuntimeError(f"{self.name} cache: put before the index was loaded")
        size = HEADER_SIZE + len(entry.body)
        evicted = self.index.reserve(digest, size)
        if evicted is None:
            log.info(
                "%s %s (%d bytes) exceeds the whole cache: not stored", self.name, digest, size
            )
            return False
        self._delete(evicted)
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
            self.storage.write(digest, entry)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            # The disk holds less than the bound promised: make room and retry once.
            freed = self.index.evict_oldest(size, keep=digest)
            if not freed:
                raise
            self._delete(freed)
            self.storage.write(digest, entry)

    def _delete(self, digests: list[str]) -> None:
        if self.hot is not None:
            self.hot.discard(digests)
        for digest in digests:
            try:
                self.storage.delete(digest)
            except OSError as exc:
                log.warning("%s cache entry %s could not be deleted: %s", self.name, digest, exc)
