"""In-memory LRU index of the disk cache, and its hot set: one structure, one lock.

Pure accounting: imports nothing that touches the network, the disk or
libvips. The caller deletes the files of the keys that `reserve` evicts.

Two orders live side by side under one lock:

- the disk order: key -> size on disk, bounded by bytes (and optionally by
  count); `reserve` returns the keys evicted to make room;
- the hot set: the most recently used values kept in memory too, bounded by
  their own bytes. A key leaves the hot set when it leaves the disk order,
  so memory never serves what the disk bound has dropped.

A hit from memory (`recall`) takes the lock once and refreshes the key in
both orders.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Hot(Generic[T]):
    value: T
    size: int
    used: float  # wall-clock time of the last use
    recorded: float  # the last use reported by `unrecorded`


class CacheIndex(Generic[T]):
    """Least-recently-used order over keys, bounded by total bytes and, optionally, count.

    With `memory_bytes`, the most recently used values are also kept in memory.
    """

    TOUCH_INTERVAL = 60.0  # seconds between reporting a hot key's use as due

    def __init__(self, max_bytes: int, max_items: int = 0, memory_bytes: int = 0) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if max_items < 0:
            raise ValueError("max_items must not be negative")
        if memory_bytes < 0:
            raise ValueError("memory_bytes must not be negative")
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.memory_bytes = memory_bytes
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._total = 0
        self._hot: OrderedDict[str, _Hot[T]] = OrderedDict()
        self._hot_total = 0
        self._loaded = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._total

    @property
    def hot_entries(self) -> int:
        return len(self._hot)

    @property
    def hot_bytes(self) -> int:
        return self._hot_total

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
            self._forget_locked(key)
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
                self._forget_locked(key)
                freed += size
                evicted.append(key)
        return evicted

    def load(self, entries: Iterable[tuple[str, int]]) -> list[str]:
        """Rebuild from (key, size) pairs ordered least to most recent.

        Returns the keys evicted to honour the bounds, which may be lower
        than when the entries were written. Hot values of keys the rebuilt
        order does not hold are dropped.
        """
        with self._lock:
            self._entries.clear()
            self._total = 0
            for key, size in entries:
                old = self._entries.pop(key, None)
                self._total += size - (old or 0)
                self._entries[key] = size
            evicted = self._evict_locked()
            for key in [k for k in self._hot if k not in self._entries]:
                self._forget_locked(key)
            self._loaded = True
            return evicted

    # --- the hot set ---------------------------------------------------------------

    def recall(self, key: str) -> tuple[T, bool] | None:
        """The value kept in memory, and whether its use is due to be recorded on disk.

        Refreshes the key in both orders. A use is due at most once per
        TOUCH_INTERVAL per key.
        """
        with self._lock:
            hot = self._hot.get(key)
            if hot is None:
                return None
            self._hot.move_to_end(key)
            if key in self._entries:
                self._entries.move_to_end(key)
            hot.used = now = time.time()
            due = now - hot.recorded >= self.TOUCH_INTERVAL
            if due:
                hot.recorded = now
            return hot.value, due

    def remember(self, key: str, value: T, size: int) -> None:
        """Keep `value` (of `size` bytes) in memory as the most recently used.

        Once the index is loaded, only keys it holds are kept: a key evicted
        while its value was being read never enters the hot set.
        """
        if not 0 <= size <= self.memory_bytes:
            return
        with self._lock:
            if self._loaded and key not in self._entries:
                return
            self._forget_locked(key)
            now = time.time()
            self._hot[key] = _Hot(value, size, used=now, recorded=now)
            self._hot_total += size
            while self._hot_total > self.memory_bytes:
                _, oldest = self._hot.popitem(last=False)
                self._hot_total -= oldest.size

    def unrecorded(self) -> list[tuple[str, float]]:
        """(key, time of last use) of each hot use not yet reported; marks them reported."""
        with self._lock:
            out = []
            for key, hot in self._hot.items():
                if hot.used > hot.recorded:
                    out.append((key, hot.used))
                    hot.recorded = hot.used
            return out

    def _forget_locked(self, key: str) -> None:
        hot = self._hot.pop(key, None)
        if hot is not None:
            self._hot_total -= hot.size

    def _evict_locked(self) -> list[str]:
        evicted: list[str] = []
        while self._entries and (
            self._total > self.max_bytes or (self.max_items and len(self._entries) > self.max_items)
        ):
            key, size = self._entries.popitem(last=False)
            self._total -= size
            self._forget_locked(key)
            evicted.append(key)
        return evicted
