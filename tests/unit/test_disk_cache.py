"""DiskCache and its HotSet on tmp_path: bounds, hot entries, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from previewer.cache import DiskCache, HotSet
from previewer.cache_index import CacheIndex
from previewer.storage import HEADER_SIZE, Entry, Storage, key_digest

BODY = b"\xff\xd8\xff" + b"x" * 997


def _cache(root: Path, max_bytes: int = 10_000, hot_bytes: int = 0) -> DiskCache:
    cache = DiskCache("test", Storage(root), CacheIndex(max_bytes), hot_bytes=hot_bytes)
    cache.load()
    return cache


def test_put_then_get_round_trip(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    digest = key_digest("a")
    assert cache.put(digest, Entry.of(BODY, "image/jpeg"))
    entry = cache.get(digest)
    assert entry is not None
    assert entry.body == BODY
    assert cache.index.total_bytes == HEADER_SIZE + len(BODY)


def test_hot_set_serves_without_the_file(tmp_path: Path) -> None:
    cache = _cache(tmp_path, hot_bytes=5_000)
    digest = key_digest("a")
    cache.put(digest, Entry.of(BODY, "image/jpeg"))
    Storage(tmp_path).delete(digest)
    found = cache.peek(digest)
    assert found is not None
    assert found[0].body == BODY
    assert found[1] is False  # just written: no disk touch due yet


def test_without_hot_set_peek_finds_nothing(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    digest = key_digest("a")
    cache.put(digest, Entry.of(BODY, "image/jpeg"))
    assert cache.peek(digest) is None


def test_disk_eviction_also_leaves_the_hot_set(tmp_path: Path) -> None:
    size = HEADER_SIZE + len(BODY)
    cache = _cache(tmp_path, max_bytes=2 * size, hot_bytes=10 * size)
    digests = [key_digest(str(i)) for i in range(3)]
    for digest in digests:
        cache.put(digest, Entry.of(BODY, "image/jpeg"))
    assert cache.peek(digests[0]) is None  # evicted from disk, so from memory too
    assert cache.peek(digests[2]) is not None


def test_hot_set_bound_and_order() -> None:
    hot = HotSet(2_500)
    entries = {str(i): Entry.of(b"x" * 1000, "image/jpeg") for i in range(3)}
    hot.add("0", entries["0"])
    hot.add("1", entries["1"])
    assert hot.get("0") is not None  # refresh 0: 1 is now the oldest
    hot.add("2", entries["2"])
    assert hot.get("1") is None
    assert hot.get("0") is not None
    assert hot.total_bytes == 2000
    assert len(hot) == 2


def test_hot_set_reports_when_a_disk_touch_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    hot = HotSet(10_000)
    hot.add("k", Entry.of(b"x", "image/jpeg"))
    found = hot.get("k")
    assert found is not None
    assert found[1] is False
    monkeypatch.setattr(HotSet, "TOUCH_INTERVAL", 0.0)
    found = hot.get("k")
    assert found is not None
    assert found[1] is True


def test_hot_set_ignores_entries_larger_than_itself() -> None:
    hot = HotSet(10)
    hot.add("big", Entry.of(b"x" * 11, "image/jpeg"))
    assert hot.get("big") is None


def test_record_use_refreshes_mtime(tmp_path: Path) -> None:
    import os

    cache = _cache(tmp_path)
    digest = key_digest("a")
    cache.put(digest, Entry.of(BODY, "image/jpeg"))
    path = Storage(tmp_path).path_for(digest)
    os.utime(path, (1_000_000, 1_000_000))
    cache.record_use(digest)
    assert path.stat().st_mtime > 1_000_000
    cache.record_use(key_digest("never stored"))  # absent: no error


def test_hot_uses_are_written_to_disk_on_request(tmp_path: Path) -> None:
    import os

    cache = _cache(tmp_path, hot_bytes=10_000)
    digests = [key_digest(str(i)) for i in range(3)]
    for digest in digests:
        cache.put(digest, Entry.of(BODY, "image/jpeg"))
    paths = [Storage(tmp_path).path_for(d) for d in digests]
    for i, path in enumerate(paths):
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    assert cache.record_hot_uses() == 0  # nothing used since it was stored
    assert cache.peek(digests[0]) is not None  # a hit from memory, not yet on disk
    assert paths[0].stat().st_mtime == 1_000_000
    assert cache.record_hot_uses() == 1
    assert paths[0].stat().st_mtime > paths[2].stat().st_mtime  # now the most recent
    assert paths[1].stat().st_mtime == 1_000_001  # unused: untouched
    assert cache.record_hot_uses() == 0  # each use is written once


def test_before_the_index_is_loaded_hits_are_read_from_disk(tmp_path: Path) -> None:
    _cache(tmp_path).put(key_digest("kept"), Entry.of(BODY, "image/jpeg"))  # an earlier run's entry
    cache = DiskCache("test", Storage(tmp_path), CacheIndex(10_000), hot_bytes=10_000)
    entry = cache.get(key_digest("kept"))  # not indexed yet: read directly
    assert entry is not None
    assert entry.body == BODY
    assert cache.get(key_digest("never stored")) is None
    assert len(cache.index) == 0
    with pytest.raises(RuntimeError, match="before the index was loaded"):
        cache.put(key_digest("new"), Entry.of(BODY, "image/jpeg"))
    cache.load()
    assert len(cache.index) == 1  # counted once, by the load
    assert cache.put(key_digest("new"), Entry.of(BODY, "image/jpeg"))
    assert cache.index.total_bytes == 2 * (HEADER_SIZE + len(BODY))


def test_before_the_index_is_loaded_a_damaged_file_is_dropped(tmp_path: Path) -> None:
    digest = key_digest("damaged")
    _cache(tmp_path).put(digest, Entry.of(BODY, "image/jpeg"))
    path = Storage(tmp_path).path_for(digest)
    path.write_bytes(path.read_bytes()[:-1])
    cache = DiskCache("test", Storage(tmp_path), CacheIndex(10_000))
    assert cache.get(digest) is None
    assert not path.exists()
    assert cache.stats.dropped == 1
