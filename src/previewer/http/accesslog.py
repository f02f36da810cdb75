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
requests' lines. Lines look exactly like the other log lines of their
format (observe/logs.py): in text, `asctime levelname name message` with the fields
as `status=200 cache=HIT ms=0.4 request_id=...`; in JSON, one object with
the fields `time`, `level`, `logger`, `message`, `request_id`, `method`,
`path`, `status`, `cache`, `ms`, `error` and `cause`. They follow the level
of the `previewer.access` logger: at `--log-level warning` there are none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TextIO

from previewer.observe.logs import iso_time

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
        as_json: bool = False,
    ) -> None:
        # None: sys.stderr as it is at each write, like logging's default handler
        self._stream = stream
        self.successes = successes  # False: failed requests only (--access-log off)
        self._interval = interval
        self._json = as_json
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
        self,
        method: str,
        path: str,
        status: int,
        cache: str,
        ms: float,
        *,
        error: str = "",
        cause: str = "",
        request_id: str | None = None,
    ) -> None:
        """Log one request: `error` is the error code answered, `cause` what the log alone sees."""
        failed = status >= 400
        if (not failed and not self.successes) or not _log.isEnabledFor(logging.INFO):
            return
        if self._json:
            line = self._json_line(method, path, status, cache, ms, error, cause, request_id)
        else:
            line = (
                f"{self._timestamp()} INFO {LOGGER_NAME} {method} {path} "
                f"status={status} cache={cache} ms={ms:.1f}"
                + (f" error={error}" if error else "")
                + (f" cause={cause!r}" if cause else "")
                + (f" request_id={request_id}" if request_id else "")
                + "\n"
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

    @staticmethod
    def _json_line(
        method: str,
        path: str,
        status: int,
        cache: str,
        ms: float,
        error: str,
        cause: str,
        request_id: str | None,
    ) -> str:
        fields = {
            "time": iso_time(time.time()),
            "level": "INFO",
            "logger": LOGGER_NAME,
            "message": f"{method} {path} {status}",
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "cache": cache,
            "ms": round(ms, 1),
            "error": error or None,
            "cause": cause or None,
        }
        return json.dumps(fields, ensure_ascii=False) + "\n"

    def _timestamp(self) -> str:
        """`logging`'s default asctime: local time with milliseconds."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"
