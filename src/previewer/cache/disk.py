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

from previewer.cache.index import CacheIndex
from previewer.cache.storage import HEADER_SIZE, CorruptEntry, Entry, Storage
from previewer.errors import NoDescriptors
from previewer.process import descriptors

log = logging.getLogger(__name__)

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(frozen=True)
class CacheHealth:
    """What /health reports of one cache; a value, taken under no lock."""

    entries: int
    bytes: int
    max_bytes: int
    loaded: bool
    memory_entries: int
    memory_bytes: int
    pending: int  # entries being written (or waiting for the index to load)
    stored: int
    store_failures: int
    dropped: int  # entries found missing or damaged on read


class DiskCache:
    """Entries of one kind under one root, bounded by an LRU index.

    The index's hot set (its `memory_bytes`) keeps the most recent entries in
    memory too. An entry being written is *pending*: `peek` and `get` find
    it from memory until its file is in place, so a write never hides an
    entry and never runs twice at once. A cache whose index has a zero byte
    bound is off: it stores nothing, and its load deletes every file left
    under its root by an earlier run.
    """

    def __init__(self, name: str, storage: Storage, index: CacheIndex[Entry]) -> None:
        self.name = name
        self.storage = storage
        self.index = index
        self.stored = 0
        self.store_failures = 0
        self.dropped = 0
        self._failing = False
        self._pending: dict[str, Entry] = {}
        self._writing: set[str] = set()
        self._pending_lock = threading.Lock()
        # One write at a time: a reservation and its file land together, so
        # no other store can evict an entry whose temporary file is on disk.
        self._write_lock = threading.Lock()
        # Set once `load` has rebuilt the index. Until then a file on disk may
        # be missing from the index: `get` looks for it directly, and `put`
        # refuses, so that the bound is never exceeded by files not yet counted.
        self.loaded = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.index.max_bytes > 0

    def fits(self, body_size: int) -> bool:
        """Could an entry with a body of `body_size` bytes ever be stored?"""
        return self.index.fits(HEADER_SIZE + body_size)

    def health(self) -> CacheHealth:
        return CacheHealth(
            entries=len(self.index),
            bytes=self.index.total_bytes,
            max_bytes=self.index.max_bytes,
            loaded=self.loaded.is_set(),
            memory_entries=self.index.hot_entries,
            memory_bytes=self.index.hot_bytes,
            pending=len(self._pending),
            stored=self.stored,
            store_failures=self.store_failures,
            dropped=self.dropped,
        )

    def peek(self, digest: str) -> tuple[Entry, bool] | None:
        """Non-blocking: the entry from memory (hot or pending), and whether `record_use` is due."""
        found = self.index.recall(digest)
        if found is not None:
            return found
        pending = self._pending.get(digest)
        return None if pending is None else (pending, False)

    def hold(self, digest: str, entry: Entry) -> None:
        """Make `entry` pending: found by `peek` and `get` until `put` has written it."""
        with self._pending_lock:
            self._pending[digest] = entry

    def record_use(self, digest: str) -> None:
        """Refresh the file's mtime, the on-disk record of last use. Blocking."""
        self.storage.touch(digest)

    def record_hot_uses(self) -> int:
        """Write every use the hot set has not yet written to disk. Blocking.

        Called at a clean stop, so that the LRU order rebuilt at the next
        start includes the hits served from memory. Returns the count.
        """
        uses = self.index.unrecorded()
        for digest, used in uses:
            try:
                self.storage.touch(digest, used)
            except OSError as exc:
                log.warning("%s cache: use of %s not recorded: %s", self.name, digest, exc)
        return len(uses)

    def load(self) -> None:
        """Rebuild the index from the files on disk, oldest use first. Blocking.

        Evicts down to the bound (which may be lower than when the files
        were written) before anything new is stored. The service runs this
        in the background while it already serves; a failed scan leaves the
        index empty and is logged, and the cache then only counts what it
        writes.
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
        """The verified entry, refreshed as most recently used; None on a miss. Blocking.

        While the index is still loading, an entry it does not list yet may
        be on disk all the same: the file is looked for either way.
        """
        pending = self._pending.get(digest)
        if pending is not None:
            return pending
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
            if descriptors.exhausted(exc):  # not the entry's fault: the request is retried
                raise NoDescriptors(detail=f"{self.name} cache entry not opened: {exc}") from exc
            log.warning("%s cache entry %s unreadable: %s", self.name, digest, exc)
        else:
            self.index.remember(digest, entry, len(entry.body))
            return entry
        return None

    def _drop(self, digest: str, why: str) -> None:
        log.warning("%s cache entry %s dropped: %s", self.name, digest, why)
        self.index.remove(digest)
        self.dropped += 1

    def put(self, digest: str, entry: Entry) -> bool:
        """Store an entry, evicting to make room first; False when not stored. Blocking.

        The room is made before the temporary file is written, so the bytes
        under the root, temporary files included, never exceed the bound.
        Only after `load`: before it, files on disk are not yet counted. A
        put of a digest already being written does nothing: the entry is
        pending and its write is under way.
        """
        if not self.loaded.is_set():
            raise RuntimeError(f"{self.name} cache: put before the index was loaded")
        with self._pending_lock:
            if digest in self._writing:
                return False
            self._writing.add(digest)
            self._pending[digest] = entry
        try:
            with self._write_lock:
                return self._store(digest, entry)
        finally:
            with self._pending_lock:
                self._writing.discard(digest)
                if self._pending.get(digest) is entry:
                    del self._pending[digest]

    def _store(self, digest: str, entry: Entry) -> bool:
        size = HEADER_SIZE + len(entry.body)
        try:
            if self.index.touch(digest):
                # Replaced: the old file goes first, so that it and the new
                # one's temporary file are never on disk together.
                self.storage.delete(digest)
            evicted = self.index.reserve(digest, size)
            if evicted is None:
                self.index.remove(digest)
                log.info(
                    "%s %s (%d bytes) exceeds the whole cache: not stored", self.name, digest, size
                )
                return False
            self._delete(evicted)
            self._write(digest, entry, size)
        except OSError as exc:
            self.index.remove(digest)
            self.store_failures += 1
            if not self._failing:
                log.error(
                    "%s cache write failed; serving uncached until it works: %s", self.name, exc
                )
            self._failing = True
            return False
        self.stored += 1
        self.index.remember(digest, entry, len(entry.body))
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
        for digest in digests:
            try:
                self.storage.delete(digest)
            except OSError as exc:
                log.warning("%s cache entry %s could not be deleted: %s", self.name, digest, exc)
