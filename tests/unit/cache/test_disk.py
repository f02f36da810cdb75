"""DiskCache on tmp_path: bounds, hot and pending entries, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from previewer.cache.disk import DiskCache
from previewer.cache.index import CacheIndex
from previewer.cache.storage import HEADER_SIZE, Entry, Storage, key_digest

BODY = b"\xff\xd8\xff" + b"x" * 997


def _cache(root: Path, max_bytes: int = 10_000, hot_bytes: int = 0) -> DiskCache:
    cache = DiskCache("test", Storage(root), CacheIndex(max_bytes, memory_bytes=hot_bytes))
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
    cache = DiskCache("test", Storage(tmp_path), CacheIndex(10_000, memory_bytes=10_000))
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
    assert cache.dropped == 1


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_a_held_entry_is_found_until_its_write_lands(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    digest = key_digest("pending")
    entry = Entry.of(BODY, "image/jpeg")
    cache.hold(digest, entry)
    assert cache.peek(digest) == (entry, False)
    assert cache.get(digest) is entry
    assert cache.health().pending == 1
    assert _disk_bytes(tmp_path) == 0
    assert cache.put(digest, entry)
    assert cache.health().pending == 0
    assert cache.peek(digest) is None  # no hot set: found on disk from here on
    found = cache.get(digest)
    assert found is not None
    assert found.body == BODY


def test_replacing_an_entry_never_holds_both_files(tmp_path: Path) -> None:
    size = HEADER_SIZE + len(BODY)
    cache = _cache(tmp_path, max_bytes=size)  # room for exactly one entry
    digest = key_digest("same")
    assert cache.put(digest, Entry.of(BODY, "image/jpeg"))
    assert cache.put(digest, Entry.of(BODY[::-1], "image/jpeg"))
    assert _disk_bytes(tmp_path) == size == cache.index.total_bytes
    found = cache.get(digest)
    assert found is not None
    assert found.body == BODY[::-1]


def test_an_entry_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_bytes=HEADER_SIZE + len(BODY) - 1)
    assert not cache.put(key_digest("big"), Entry.of(BODY, "image/jpeg"))
    assert _disk_bytes(tmp_path) == 0
    assert cache.health().pending == 0


def test_a_cache_with_no_bytes_is_off_and_its_load_clears_old_files(tmp_path: Path) -> None:
    _cache(tmp_path).put(key_digest("old"), Entry.of(BODY, "image/jpeg"))
    cache = DiskCache("test", Storage(tmp_path), CacheIndex(0))
    assert not cache.enabled
    cache.load()
    assert _disk_bytes(tmp_path) == 0
    assert cache.health().entries == 0


def test_health_reports_the_cache_as_a_value(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_bytes=5_000, hot_bytes=5_000)
    cache.put(key_digest("a"), Entry.of(BODY, "image/jpeg"))
    health = cache.health()
    assert (health.entries, health.bytes, health.max_bytes) == (1, HEADER_SIZE + len(BODY), 5_000)
    assert (health.memory_entries, health.memory_bytes) == (1, len(BODY))
    assert (health.loaded, health.stored, health.store_failures, health.dropped) == (
        True,
        1,
        0,
        0,
    )


def test_a_use_that_cannot_be_written_is_logged_and_the_others_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import shutil

    cache = _cache(tmp_path, hot_bytes=10_000)
    blocked, kept = key_digest("blocked"), key_digest("kept")
    assert blocked[:4] != kept[:4]  # in shards of their own
    for digest in (blocked, kept):
        cache.put(digest, Entry.of(BODY, "image/jpeg"))
    storage = Storage(tmp_path)
    os.utime(storage.path_for(kept), (1_000_000, 1_000_000))
    for digest in (blocked, kept):
        assert cache.peek(digest) is not None  # hits from memory
    shard = storage.path_for(blocked).parent
    shutil.rmtree(shard)
    shard.write_bytes(b"")  # a file where the shard's directory was: the touch fails
    assert cache.record_hot_uses() == 2
    assert storage.path_for(kept).stat().st_mtime > 1_000_000
    assert f"test cache: use of {blocked} not recorded" in caplog.text


def test_an_evicted_entry_that_cannot_be_deleted_is_logged_and_forgotten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = HEADER_SIZE + len(BODY)
    cache = _cache(tmp_path, max_bytes=2 * size)
    oldest, newer, newest = (key_digest(name) for name in ("oldest", "newer", "newest"))
    for digest in (oldest, newer):
        cache.put(digest, Entry.of(BODY, "image/jpeg"))
    path = Storage(tmp_path).path_for(oldest)
    path.unlink()
    path.mkdir()  # a directory where the entry's file was: the delete fails
    assert cache.put(newest, Entry.of(BODY, "image/jpeg"))
    assert f"test cache entry {oldest} could not be deleted" in caplog.text
    assert cache.get(oldest) is None
    assert (len(cache.index), cache.index.total_bytes) == (2, 2 * size)
