"""The access log: one line per request, written in batches.

A line sent through `logging` costs a LogRecord, a formatted timestamp and a
write(2) with a flush: about 25 microseconds, a large share of a cache hit
served from memory. `AccessLog` formats the same line itself (the timestamp's
date and time are reused within a second) and keeps it in memory until one of:

- a failed request (status 400 or more): its line, and every line before it,
  are written at once, so failures show up without delay and in order;
- `FLUSH_INTERVAL` seconds after the oldest waiting line;
- `MAX_BUFFERED` characters waiting;
- the service stopping cleanly.

A process killed with SIGKILL loses at most the last second of successful
requests' lines. Lines look exactly like the other log lines
(`asctime levelname name message`), and they follow the level of the
`previewer.access` logger: at `--log-level warning` there are none.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

LOGGER_NAME = "previewer.access"
FLUSH_INTERVAL = 1.0  # seconds a successful request's line may wait
MAX_BUFFERED = 64 * 1024  # characters waiting before a write regardless

_log = logging.getLogger(LOGGER_NAME)


class AccessLog:
    """Buffered access lines for one event loop (not thread-safe: call it from the loop)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        successes: bool = True,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        # None: sys.stderr as it is at each write, like logging's default handler
        self._stream = stream
        self.successes = successes  # False: failed requests only (--access-log off)
        self._interval = interval
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    @property
    def waiting(self) -> int:
        """Lines not yet written."""
        return len(self._lines)

    def record(
        self, method: str, path: str, status: int, cache: str, ms: float, cause: str = ""
    ) -> None:
        """Log one request; `cause` is appended as is (it starts with a space)."""
        failed = status >= 400
        if (not failed and not self.successes) or not _log.isEnabledFor(logging.INFO):
            return
        line = (
            f"{self._timestamp()} INFO {LOGGER_NAME} {method} {path} "
            f"status={status} cache={cache} ms={ms:.1f}{cause}\n"
        )
        self._lines.append(line)
        self._size += len(line)
        if failed or self._size >= MAX_BUFFERED:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Write every waiting line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or full log must not fail requests
            pass

    def _timestamp(self) -> str:
        """`logging`'s default asctime: local time with milliseconds."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"
