"""previewer.cache.storage: atomic writes, verified reads, last-use order and scan clean-up."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from previewer.cache.storage import (
    HEADER_SIZE,
    CorruptEntry,
    Entry,
    Storage,
    key_digest,
)

BODY = b"\xff\xd8\xff\xe0 not really a jpeg, but storage does not care" * 10


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "cache")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def set_mtime(path: Path, seconds: int) -> None:
    ns = seconds * 1_000_000_000
    os.utime(path, ns=(ns, ns))


# --- digests ----------------------------------------------------------------------


def test_key_digest_is_a_stable_hex_name() -> None:
    digest = key_digest("v1|fill|100x100|http://example.com/a.jpg")
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert digest == key_digest("v1|fill|100x100|http://example.com/a.jpg")
    assert digest != key_digest("v1|fill|100x101|http://example.com/a.jpg")


def sha_etag(body: bytes) -> str:
    """The ETag an entry must carry: the first 128 bits of its body's SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def test_an_entrys_etag_is_a_quoted_strong_etag_of_its_body() -> None:
    etag = Entry.of(BODY, "image/jpeg").etag
    assert etag == sha_etag(BODY)
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert not etag.startswith('W/"')
    assert etag != Entry.of(BODY + b"x", "image/jpeg").etag


# --- write and read ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["image/jpeg", "image/png", "image/webp", "image/avif", "application/octet-stream"],
)
def test_round_trip(storage: Storage, content_type: str) -> None:
    digest = key_digest("round trip")
    before = time.time()
    storage.write(digest, Entry.of(BODY, content_type))
    after = time.time()
    entry = storage.read(digest)
    assert entry.body == BODY
    assert entry.content_type == content_type
    assert entry.etag == sha_etag(BODY)
    assert before <= entry.created <= after


def test_round_trip_of_an_empty_body(storage: Storage) -> None:
    digest = key_digest("empty")
    assert storage.write(digest, Entry.of(b"", "image/png")) == HEADER_SIZE
    entry = storage.read(digest)
    assert entry.body == b""
    assert entry.etag == sha_etag(b"")


def test_write_stores_the_checksum_the_entry_carries(storage: Storage) -> None:
    entry = Entry.of(BODY, "application/octet-stream")
    assert entry.checksum == hashlib.sha256(BODY).digest()
    assert entry.etag == sha_etag(BODY)
    digest = key_digest("source")
    assert storage.write(digest, entry) == HEADER_SIZE + len(BODY)
    assert storage.read(digest) == entry


def test_a_wrong_checksum_given_to_write_is_caught_on_read(storage: Storage) -> None:
    # the write trusts the entry's checksum (the body is hashed once, in Entry.of);
    # the read still verifies it against the bytes
    entry = dataclasses.replace(Entry.of(BODY, "image/jpeg"), checksum=bytes(32))
    digest = key_digest("lying entry")
    storage.write(digest, entry)
    with pytest.raises(CorruptEntry):
        storage.read(digest)


def test_write_reports_the_size_on_disk(storage: Storage) -> None:
    for n, body in enumerate([b"", b"x", BODY, bytes(range(256)) * 100]):
        digest = key_digest(f"size {n}")
        size = storage.write(digest, Entry.of(body, "image/jpeg"))
        assert size == storage.path_for(digest).stat().st_size
        assert size >= len(body)


def test_entry_lives_at_its_sharded_path(storage: Storage) -> None:
    digest = key_digest("shard")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    path = storage.path_for(digest)
    assert path == storage.root / digest[:2] / digest[2:4] / digest
    assert path.is_file()
    assert all_files(storage.root) == [path]


def test_rewrite_replaces_the_entry(storage: Storage) -> None:
    digest = key_digest("rewrite")
    storage.write(digest, Entry.of(b"first", "image/jpeg"))
    storage.write(digest, Entry.of(b"second body", "image/png"))
    entry = storage.read(digest)
    assert entry.body == b"second body"
    assert entry.content_type == "image/png"
    assert len(all_files(storage.root)) == 1


def test_atomic_write_leaves_no_temporary_file(storage: Storage) -> None:
    for n in range(5):
        storage.write(key_digest(f"atomic {n}"), Entry.of(BODY, "image/jpeg"))
    files = all_files(storage.root)
    assert len(files) == 5
    assert not [f for f in files if f.name.endswith(".tmp")]


def test_failed_write_leaves_nothing_behind(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = key_digest("fails")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        storage.write(digest, Entry.of(BODY, "image/jpeg"))
    monkeypatch.undo()
    assert all_files(storage.root) == []
    with pytest.raises(FileNotFoundError):
        storage.read(digest)


def test_failed_rewrite_keeps_the_old_entry(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = key_digest("keeps")
    storage.write(digest, Entry.of(b"old", "image/jpeg"))

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        storage.write(digest, Entry.of(b"new", "image/jpeg"))
    monkeypatch.undo()
    assert storage.read(digest).body == b"old"
    assert len(all_files(storage.root)) == 1


def test_unknown_content_type_is_refused(storage: Storage) -> None:
    with pytest.raises((KeyError, ValueError)):
        storage.write(key_digest("gif"), Entry.of(BODY, "image/gif"))
    assert all_files(storage.root) == []


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        ("image/jpeg", 1),
        ("image/png", 2),
        ("application/octet-stream", 3),
        ("image/webp", 4),
        ("image/avif", 5),
    ],
)
def test_format_codes_on_disk_never_change(storage: Storage, content_type: str, code: int) -> None:
    """Entries written by earlier releases must keep reading as the same type."""
    digest = key_digest(content_type)
    storage.write(digest, Entry.of(BODY, content_type))
    assert storage.path_for(digest).read_bytes()[4] == code


def test_an_unknown_format_code_is_dropped_as_corrupt(storage: Storage) -> None:
    """What a newer release wrote is a miss here, never served under a wrong type."""
    digest = key_digest("from the future")
    storage.write(digest, Entry.of(BODY, "image/avif"))
    path = storage.path_for(digest)
    data = path.read_bytes()
    path.write_bytes(data[:4] + bytes([6]) + data[5:])
    with pytest.raises(CorruptEntry):
        storage.read(digest)
    assert not path.exists()


def test_read_of_a_missing_entry(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.read(key_digest("never written"))


def test_read_refreshes_the_last_use_time(storage: Storage) -> None:
    digest = key_digest("touch")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    path = storage.path_for(digest)
    set_mtime(path, 1_000_000)
    old = path.stat().st_mtime_ns
    storage.read(digest)
    assert path.stat().st_mtime_ns > old


def test_delete(storage: Storage) -> None:
    digest = key_digest("delete")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    storage.delete(digest)
    assert not storage.path_for(digest).exists()
    storage.delete(digest)  # deleting twice is fine
    with pytest.raises(FileNotFoundError):
        storage.read(digest)


# --- corruption -------------------------------------------------------------------


def _truncate_by_one(data: bytes) -> bytes:
    return data[:-1]


def _flip(index: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        position = index if index >= 0 else len(data) + index
        return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]

    return damage


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated body": _truncate_by_one,
    "truncated to half": lambda data: data[: len(data) // 2],
    "truncated inside the header": lambda data: data[: HEADER_SIZE - 1],
    "empty file": lambda data: b"",
    "extra bytes": lambda data: data + b"\x00",
    "last body byte flipped": _flip(-1),
    "first body byte flipped": _flip(HEADER_SIZE),
    "magic flipped": _flip(0),
    "format byte flipped": _flip(4),
    "length flipped": _flip(16),
    "checksum flipped": _flip(HEADER_SIZE - 1),
    "zeroed": lambda data: bytes(len(data)),
}


@pytest.mark.parametrize("damage", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_entries_raise_and_are_deleted(
    storage: Storage, damage: Callable[[bytes], bytes]
) -> None:
    digest = key_digest("corrupt")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    path = storage.path_for(digest)
    data = path.read_bytes()
    damaged = damage(data)
    assert damaged != data
    path.write_bytes(damaged)
    with pytest.raises(CorruptEntry):
        storage.read(digest)
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        storage.read(digest)


def test_a_corrupt_entry_does_not_affect_its_neighbours(storage: Storage) -> None:
    good, bad = key_digest("good"), key_digest("bad")
    storage.write(good, Entry.of(BODY, "image/jpeg"))
    storage.write(bad, Entry.of(BODY, "image/jpeg"))
    storage.path_for(bad).write_bytes(b"garbage")
    with pytest.raises(CorruptEntry):
        storage.read(bad)
    assert storage.read(good).body == BODY


# --- path_for ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "abc",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "../" + "a" * 61,
        "a" * 62 + "/x",
        "a" * 64 + "\n",
        " " + "a" * 63,
        "/" + "a" * 63,
    ],
)
def test_path_for_rejects_non_hex_digests(storage: Storage, digest: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        storage.path_for(digest)
    with pytest.raises(ValueError, match="digest"):
        storage.write(digest, Entry.of(BODY, "image/jpeg"))
    with pytest.raises(ValueError, match="digest"):
        storage.read(digest)
    with pytest.raises(ValueError, match="digest"):
        storage.delete(digest)


def test_path_for_stays_under_the_root(storage: Storage) -> None:
    path = storage.path_for(key_digest("x"))
    assert path.is_relative_to(storage.root)


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = Storage(Path("relative"))
    assert storage.root == tmp_path / "relative"


# --- scan -------------------------------------------------------------------------


def test_scan_of_a_missing_root(storage: Storage) -> None:
    assert storage.scan() == []


def test_scan_reports_digest_and_size(storage: Storage) -> None:
    sizes = {}
    for n in range(4):
        digest = key_digest(f"scan {n}")
        sizes[digest] = storage.write(digest, Entry.of(BODY * (n + 1), "image/jpeg"))
    scanned = storage.scan()
    assert {entry.digest: entry.size for entry in scanned} == sizes


def test_scan_orders_by_last_use(storage: Storage) -> None:
    a, b, c = key_digest("a"), key_digest("b"), key_digest("c")
    for digest in (a, b, c):
        storage.write(digest, Entry.of(BODY, "image/jpeg"))
    set_mtime(storage.path_for(a), 3_000_000)
    set_mtime(storage.path_for(b), 1_000_000)
    set_mtime(storage.path_for(c), 2_000_000)
    assert [entry.digest for entry in storage.scan()] == [b, c, a]

    storage.read(b)  # now the most recently used
    assert [entry.digest for entry in storage.scan()] == [c, a, b]


def test_scan_last_used_matches_the_file(storage: Storage) -> None:
    digest = key_digest("mtime")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    set_mtime(storage.path_for(digest), 1_234_567)
    (entry,) = storage.scan()
    assert entry.last_used_ns == 1_234_567 * 1_000_000_000


def test_scan_removes_temporary_and_stray_files(storage: Storage) -> None:
    digest = key_digest("kept")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    shard = storage.path_for(digest).parent
    temp = shard / f"{digest}.123.456.tmp"
    temp.write_bytes(b"half a write")
    stray = shard / "notes.txt"
    stray.write_text("hello")
    upper = shard / digest.upper()
    upper.write_bytes(b"x")
    other_shard = storage.root / "00" / "00"
    other_shard.mkdir(parents=True)
    (other_shard / "junk").write_bytes(b"x")

    scanned = storage.scan()

    assert [entry.digest for entry in scanned] == [digest]
    assert not temp.exists()
    assert not stray.exists()
    assert not upper.exists()
    assert not (other_shard / "junk").exists()
    assert storage.read(digest).body == BODY


def test_scan_removes_an_entry_outside_its_shard(storage: Storage) -> None:
    """A digest file that path_for() would never find could be neither read nor evicted."""
    digest = key_digest("misplaced")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    wrong = "00" if digest[:2] != "00" else "11"
    misplaced = storage.root / wrong / digest[2:4] / digest
    misplaced.parent.mkdir(parents=True, exist_ok=True)
    storage.path_for(digest).rename(misplaced)

    assert storage.scan() == []
    assert not misplaced.exists()


def test_scan_leaves_other_directories_alone(storage: Storage) -> None:
    digest = key_digest("kept")
    storage.write(digest, Entry.of(BODY, "image/jpeg"))
    other = storage.root / "lost+found"
    other.mkdir()
    (other / "file").write_bytes(b"x")
    top_level = storage.root / "README"
    top_level.write_text("operator notes")
    nested = storage.path_for(digest).parent / "nested"
    nested.mkdir()

    assert [entry.digest for entry in storage.scan()] == [digest]
    assert (other / "file").exists()
    assert top_level.exists()
    assert nested.is_dir()


def test_scan_then_read_everything(storage: Storage) -> None:
    written = {}
    for n in range(10):
        digest = key_digest(f"bulk {n}")
        body = bytes([n]) * (n * 10)
        storage.write(digest, Entry.of(body, "image/png"))
        written[digest] = body
    for entry in storage.scan():
        assert storage.read(entry.digest).body == written[entry.digest]
