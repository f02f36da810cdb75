"""Disk layer of the cache: key -> sharded path, atomic write, verified read, scan.

Blocking file I/O; callers run it in a thread. Knows nothing of HTTP or libvips.

An entry lives at `root/ab/cd/<sha256 of the cache key>`, never at a path made
from user input. Its layout is a fixed header followed by the preview bytes:

    magic "PVW1" | format (1 byte: 1 JPEG, 2 PNG, 3 source bytes, 4 WebP, 5 AVIF)
    | 3 reserved
    | created (float64, Unix time)
    | body length (uint64) | SHA-256 of the body (32 bytes) | body

A read checks the magic, the length and the checksum, so a truncated or
corrupted entry is dropped instead of served. Format codes are only ever
added: an entry written before WebP and AVIF existed reads the same, and an
older release that meets a code it does not know drops that entry as
corrupt (a miss, rendered again) rather than serve it under a wrong type.
A write goes to a temporary file in the same directory, then is renamed
over the final name, so a crash leaves
either the whole entry or a `.tmp` file that `scan` removes. There is no fsync
per entry: a process crash cannot lose written data, and whatever a power loss
leaves behind fails the checksum and is dropped rather than served.
The file's mtime records its last use (atime is unreliable on relatime and
noatime mounts); `scan` returns entries ordered by it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_MAGIC = b"PVW1"
_HEADER = struct.Struct("<4sB3xdQ32s")
HEADER_SIZE = _HEADER.size
_FORMATS = {
    "image/jpeg": 1,
    "image/png": 2,
    "application/octet-stream": 3,  # a cached source
    "image/webp": 4,
    "image/avif": 5,
}
_CONTENT_TYPES = {code: ctype for ctype, code in _FORMATS.items()}
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
TEMP_SUFFIX = ".tmp"


def key_digest(cache_key: str) -> str:
    """The file name of a cache key: its SHA-256 in hex."""
    return hashlib.sha256(cache_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    body: bytes
    content_type: str
    created: float
    checksum: bytes  # SHA-256 of body: the file's integrity check and the ETag's source

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Entry:
        """An entry made now; the body is hashed here, once, for the file and the ETag."""
        return cls(body, content_type, time.time(), hashlib.sha256(body).digest())

    @property
    def etag(self) -> str:
        """A strong ETag: the first 128 bits of the body's SHA-256."""
        return '"' + self.checksum[:16].hex() + '"'


@dataclass(frozen=True)
class ScannedEntry:
    digest: str
    size: int
    last_used_ns: int


class CorruptEntry(Exception):
    """An entry failed its header, length or checksum check."""


class Storage:
    """Files of the disk cache under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    def path_for(self, digest: str) -> Path:
        if not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a cache digest: {digest!r}")
        path = self.root / digest[:2] / digest[2:4] / digest
        if not path.is_relative_to(self.root):  # defence in depth; digest is hex
            raise ValueError(f"path escapes the cache root: {path}")
        return path

    def write(self, digest: str, entry: Entry) -> int:
        """Store an entry atomically, with the checksum it carries; returns its size on disk."""
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = entry.body
        header = _HEADER.pack(
            _MAGIC, _FORMATS[entry.content_type], entry.created, len(body), entry.checksum
        )
        tmp = path.with_name(f"{digest}.{os.getpid()}.{time.monotonic_ns()}{TEMP_SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(header)
                fh.write(body)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return HEADER_SIZE + len(body)

    def read(self, digest: str) -> Entry:
        """Read and verify an entry, and record its use.

        Raises FileNotFoundError when absent and CorruptEntry (after deleting
        the file) when it fails a check.
        """
        path = self.path_for(digest)
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            entry = _decode(data)
        except CorruptEntry:
            self.delete(digest)
            raise
        with contextlib.suppress(OSError):
            os.utime(path)
        return entry

    def touch(self, digest: str, when: float | None = None) -> None:
        """Record a use of the entry (its mtime: now, or `when`) without reading it."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path_for(digest), None if when is None else (when, when))

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(digest).unlink()

    def scan(self) -> list[ScannedEntry]:
        """Every entry under the root, least recently used first.

        Removes temporary files left by an interrupted write, and files whose
        names are not cache digests or that sit outside their digest's shard.
        """
        found: list[ScannedEntry] = []
        if not self.root.is_dir():
            return found
        for first in _subdirs(self.root):
            for second in _subdirs(Path(first.path)):
                with os.scandir(second.path) as files:
                    for item in files:
                        if not item.is_file(follow_symlinks=False):
                            continue
                        # not a digest, or not where path_for() would look for it
                        shard = first.name + second.name
                        if not _DIGEST_RE.fullmatch(item.name) or item.name[:4] != shard:
                            log.info("cache scan: removing stray file %s", item.path)
                            with contextlib.suppress(OSError):
                                os.unlink(item.path)
                            continue
                        stat = item.stat(follow_symlinks=False)
                        found.append(ScannedEntry(item.name, stat.st_size, stat.st_mtime_ns))
        found.sort(key=lambda entry: entry.last_used_ns)
        return found


def _subdirs(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return [e for e in entries if len(e.name) == 2 and e.is_dir(follow_symlinks=False)]


def _decode(data: bytes) -> Entry:
    if len(data) < HEADER_SIZE:
        raise CorruptEntry("shorter than its header")
    magic, fmt, created, length, checksum = _HEADER.unpack_from(data)
    body = data[HEADER_SIZE:]
    if magic != _MAGIC or fmt not in _CONTENT_TYPES:
        raise CorruptEntry("bad header")
    if len(body) != length:
        raise CorruptEntry(f"body is {len(body)} bytes, header says {length}")
    digest = hashlib.sha256(body).digest()
    if digest != checksum:
        raise CorruptEntry("checksum mismatch")
    return Entry(
        body=body,
        content_type=_CONTENT_TYPES[fmt],
        created=created,
        checksum=digest,
    )
