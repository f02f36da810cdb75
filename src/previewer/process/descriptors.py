"""File descriptors: the open-file limit, the connection cap it allows, and running out.

Every client connection, cache file, origin connection and broker link
costs one descriptor. At start-up `raise_limit` lifts the soft open-file
limit to the hard one where the process may (as Go's runtime does), and
`connection_cap` derives how many client connections may be open so that
everything else keeps its share. `exhausted` tells whether an error is the
process (EMFILE) or the system (ENFILE) being out of descriptors: such a
request is answered 503 `overloaded` with `Retry-After`, never 500.

Imports nothing that touches the network, the disk or libvips.
"""

from __future__ import annotations

import errno
import resource
from dataclasses import dataclass

# Connections the automatic cap allows at most, whatever the limit: beyond
# it an attacker's connections cost memory (each holds its buffers) sooner
# than they cost descriptors. imgproxy's IMGPROXY_MAX_CLIENTS default.
MAX_AUTO_CONNECTIONS = 2048
MIN_CONNECTIONS = 16
# Descriptors kept for everything but client connections: the interpreter,
# libraries, the event loop, logs and the listening sockets (BASE); each
# render slot and queued render may hold a cache file and an origin
# connection (PER_RENDER); the broker link and its channels (BROKER).
BASE_RESERVE = 64
PER_RENDER_RESERVE = 2
BROKER_RESERVE = 16
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


@dataclass(frozen=True)
class OpenFileLimit:
    """The soft open-file limit before and after `raise_limit`, and the hard one."""

    before: int
    soft: int
    hard: int  # resource.RLIM_INFINITY (-1) when unlimited


def raise_limit() -> OpenFileLimit:
    """Lift the soft RLIMIT_NOFILE to the hard limit, where allowed.

    An unlimited hard limit is not a number the kernel takes for the soft
    one: it is raised to /proc/sys/fs/nr_open's usual 1048576 instead. A
    refusal (a sandbox, a container without the capability) keeps the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return OpenFileLimit(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return OpenFileLimit(soft, soft, hard)
    return OpenFileLimit(soft, target, hard)


def reserve(render_slots: int, broker: bool) -> int:
    """Descriptors kept for everything but client connections."""
    return BASE_RESERVE + PER_RENDER_RESERVE * render_slots + (BROKER_RESERVE if broker else 0)


def connection_cap(open_files: int, reserved: int) -> int:
    """The automatic connection cap: what `open_files` leaves after `reserved`, bounded."""
    if open_files == resource.RLIM_INFINITY:
        return MAX_AUTO_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_AUTO_CONNECTIONS, open_files - reserved))


def exhausted(exc: BaseException | None) -> bool:
    """Is `exc`, or an error it was raised from, EMFILE or ENFILE?"""
    seen = 0
    while exc is not None and seen < 8:  # a short chain: causes, then contexts
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS:
            return True
        inner = getattr(exc, "os_error", None)  # aiohttp's connector errors wrap one
        if isinstance(inner, OSError) and inner.errno in _OUT_OF_DESCRIPTORS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
