"""glibc malloc settings for the long-running commands (`serve`, `worker`).

Standard library only: `launch.py` runs this before the rest of previewer
(libvips, aiohttp) is imported, so that starting again costs a bare
interpreter start.

Three settings, each measured in docs/performance.md:

- **Two arenas.** glibc gives each thread a heap of its own; freed buffers of
  several megabytes stay resident on heaps that are never returned.
- **Blocks over 1 MiB in mappings of their own.** A freed source or pixel
  buffer goes back to the system at once, so resident memory stays near the
  working set. The price is that every large buffer of a miss is a fresh
  mapping whose pages fault in again: a progressive JPEG's coefficients
  alone are tens of megabytes.
- **Those mappings on transparent huge pages.** A 2 MiB page faults in once
  where 512 pages of 4 KiB fault in one by one: the same memory for about
  16% more misses per second.

glibc reads the huge-page setting (the tunable `glibc.malloc.hugetlb`) only
from the environment when a process starts. So `previewer serve` and
`previewer worker` start again, once, in place (`exec`: the same process id)
with the three settings in `GLIBC_TUNABLES`, when the kernel gives huge pages
on request (transparent huge pages in `madvise` mode, Debian's default). In
`always` mode the kernel gives them unasked; in `never` mode there are none;
in both, and wherever the start again fails, the first two settings are
applied with `mallopt` instead.

An operator who sets glibc's own malloc variables (`MALLOC_ARENA_MAX`, ...,
or any `glibc.malloc.*` tunable, `glibc.malloc.hugetlb=0` included) tunes
malloc alone: previewer then changes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

GLIBC_MALLOC_VARIABLES = (
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)
"""glibc's own malloc variables: an operator who sets one tunes malloc alone."""

ARENAS = 2
MMAP_THRESHOLD = 1 << 20  # bytes
TUNABLES = (
    ("glibc.malloc.hugetlb", "1"),  # madvise(MADV_HUGEPAGE) on malloc's mappings
    ("glibc.malloc.arena_max", str(ARENAS)),
    ("glibc.malloc.mmap_threshold", str(MMAP_THRESHOLD)),
)
"""previewer's malloc settings as glibc tunables, in the order they are written."""

STARTED_AGAIN = "_PREVIEWER_STARTED_AGAIN"
"""Set in the environment of the start again, so that there is never a second one,
whatever the loader made of `GLIBC_TUNABLES`."""

_AT_SECURE = 23  # elf.h: the process runs with privileges the loader guards

HUGETLB_SINCE = (2, 35)  # the first glibc with glibc.malloc.hugetlb
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def set_by_environment(environ: Mapping[str, str]) -> bool:
    """Whether the environment already carries glibc malloc settings.

    They are the operator's own, or previewer's after it started again:
    either way, nothing is left to set.
    """
    return any(name in environ for name in GLIBC_MALLOC_VARIABLES) or (
        "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")
    )


def thp_mode(path: Path = THP_ENABLED) -> str | None:
    """The kernel's transparent huge page mode (`always`, `madvise`, `never`), if known."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def glibc_version() -> tuple[int, int] | None:
    """glibc's version as (major, minor); None under another C library."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""
        name, version = found.split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):  # no confstr, or not glibc's answer
        return None


def privileged() -> bool:
    """Whether the loader treats this process as privileged (`AT_SECURE`).

    It then ignores or drops `GLIBC_TUNABLES` (setuid, or an interpreter
    given file capabilities, say to bind port 80).
    """
    getauxval = _libc_function("getauxval")
    if getauxval is None:  # pragma: no cover - not glibc
        return False
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return bool(getauxval(_AT_SECURE))


def restart_environment(
    environ: Mapping[str, str],
    thp: str | None,
    glibc: tuple[int, int] | None,
    secure: bool = False,
) -> dict[str, str] | None:
    """The environment to start again with, or None when starting again gains nothing.

    Pure: `thp`, `glibc` and `secure` are what `thp_mode()`,
    `glibc_version()` and `privileged()` report. Tunables of other glibc
    namespaces already set are kept in front.
    """
    if set_by_environment(environ) or STARTED_AGAIN in environ or thp != "madvise":
        return None
    if secure:  # the tunables would not apply: mallopt instead
        return None
    if glibc is None or glibc < HUGETLB_SINCE:
        return None
    ours = ":".join(f"{name}={value}" for name, value in TUNABLES)
    theirs = environ.get("GLIBC_TUNABLES", "")
    tunables = f"{theirs}:{ours}" if theirs else ours
    return {**environ, "GLIBC_TUNABLES": tunables, STARTED_AGAIN: "1"}


def start_again_with_tunables(argv: Sequence[str] | None = None) -> None:
    """Replace this process with itself, the malloc tunables set, where that gains something.

    Returns only when nothing was done: no gain (`restart_environment`), no
    interpreter to start, or an `exec` that failed.
    """
    environ = restart_environment(os.environ, thp_mode(), glibc_version(), privileged())
    argv = list(sys.orig_argv if argv is None else argv)
    if environ is None or not argv or not sys.executable:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.execve(sys.executable, argv, environ)  # pragma: no cover - does not return


def tune(environ: Mapping[str, str]) -> None:
    """Apply the arena and mapping settings in this process, unless set already.

    The fallback for where the tunables were not set at start: no huge pages,
    but the same resident memory. Call it before any thread starts. No-op
    where the C library is not glibc.
    """
    if set_by_environment(environ):
        return
    mallopt = _libc_function("mallopt")
    if mallopt is None:  # pragma: no cover - not glibc
        return
    mallopt(_M_ARENA_MAX, ARENAS)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _libc_function(name: str) -> Any:
    """A function of the C library this process runs on, or None where it has none."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None


_M_ARENA_MAX = -8  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
