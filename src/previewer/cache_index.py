"""In-memory LRU index of the disk cache: key -> byte size, under a byte budget.

Pure accounting: imports nothing that touches the network, the disk or
libvips. The caller deletes the files of the keys that `reserve` evicts.
Every method takes one lock, so the index may be shared by threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable


class CacheIndex:
    """Least-recently-used order over keys, bounded by total bytes and, optionally, count."""

    def __init__(self, max_bytes: int, max_items: int = 0) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if max_items < 0:
            raise ValueError("max_items must not be negative")
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def total_bytes(self) -> int:
        return self._total

    def fits(self, size: int) -> bool:
        """Could an entry of `size` bytes ever be stored?"""
        return 0 <= size <= self.max_bytes

    def touch(self, key: str) -> bool:
        """Mark `key` most recently used; False when it is not indexed."""
        with self._lock:
            if key not in self._entries:
                return False
            self._entries.move_to_end(key)
            return True

    def reserve(self, key: str, size: int) -> list[str] | None:
        """Account `size` bytes for `key` as most recently used.

        Returns the keys evicted to make room (least recent first), or None,
        changing nothing, when the entry is larger than the whole budget.
        """
        if not self.fits(size):
            return None
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old
            self._entries[key] = size
            self._total += size
            return self._evict_locked()

    def remove(self, key: str) -> bool:
        with self._lock:
            size = self._entries.pop(key, None)
            if size is None:
                return False
            self._total -= size
            return True

    def evict_oldest(self, nbytes: int, keep: str) -> list[str]:
        """Evict least recently used entries (never `keep`) until `nbytes` are freed.

        For when the disk holds less than the budget promised (it is full).
        Returns the evicted keys, which may free less if the index runs out.
        """
        evicted: list[str] = []
        freed = 0
        with self._lock:
            for key in list(self._entries):
                if freed >= nbytes:
                    break
                if key == keep:
                    continue
                size = self._entries.pop(key)
                self._total -= size
                freed += size
                evicted.append(key)
        return evicted

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def load(self, entries: Iterable[tuple[str, int]]) -> list[str]:
        """Rebuild from (key, size) pairs ordered least to most recent.

        Returns the keys evicted to honour the bounds, which may be lower
        than when the entries were written.
        """
        with self._lock:
            self._entries.clear()
            self._total = 0
            for key, size in entries:
                old = self._entries.pop(key, None)
                self._total += size - (old or 0)
                self._entries[key] = size
            return self._evict_locked()

    def _evict_locked(self) -> list[str]:
        evicted: list[str] = []
        while self._entries and (
            self._total > self.max_bytes or (self.max_items and len(self._entries) > self.max_items)
        ):
            key, size = self._entries.popitem(last=False)
            self._total -= size
            evicted.append(key)
        return evicted
