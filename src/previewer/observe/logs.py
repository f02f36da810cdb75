"""The log: its two formats, and the request id on every line about a request.

`X-Request-Id` names a request from end to end. `request_id_for` keeps the
client's value when it is well formed (1 to 128 characters of letters,
digits and `._:-`) and makes one (128 random bits in 32 hex digits, as
random as a UUID4 at a quarter of its cost) when it is not. The server puts
the id in `current_request` for the time of the request; a contextvar, so
it follows the request into its tasks and the threads `asyncio.to_thread`
starts, and every log record made meanwhile carries it (`RequestIdFilter`).

Two formats, `--log-format`:

- `text`: `asctime levelname name message`, and ` request_id=...` at the end
  of a line about a request;
- `json`: one object per line, fields `time` (UTC, ISO 8601 with
  milliseconds), `level`, `logger`, `message`, `request_id` (null on lines
  about no request), and `exception` when there is a traceback. Access
  lines (http/accesslog.py) add `method`, `path`, `status`, `cache`, `ms`,
  `error` and `cause`.

Standard library only; imports nothing that touches the network or libvips.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "previewer_request_id", default=None
)


def request_id_for(sent: str | None) -> str:
    """The client's id when well formed, else a new one."""
    if sent is not None and _REQUEST_ID_RE.fullmatch(sent):
        return sent
    return new_request_id()


def new_request_id() -> str:
    return os.urandom(16).hex()


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` from the request being handled (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request.get()
        return True


class TextFormatter(logging.Formatter):
    """`asctime levelname name message`, then ` request_id=...` when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} request_id={request_id}" if request_id else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the stable fields the module docstring lists."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False)


def iso_time(created: float) -> str:
    """`2026-11-30T06:48:41.123Z`: UTC, milliseconds."""
    second = int(created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{stamp}.{int((created - second) * 1000):03d}Z"


def setup(level: str, log_format: str) -> None:
    """Send every record to stderr in `log_format` (`text` or `json`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
