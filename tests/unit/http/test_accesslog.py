"""previewer.http.accesslog: batched lines, failures written at once, the level obeyed."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest

from previewer.http.accesslog import LOGGER_NAME, MAX_BUFFERED, AccessLog
from waiting import until

LINE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO previewer\.access "
    r"GET /fill/1/1/a\.test/x\.jpg status=(\d+) cache=(\S+) ms=(\d+\.\d)(.*)"
)


@pytest.fixture(autouse=True)
def _info_level() -> Iterator[None]:
    logger = logging.getLogger(LOGGER_NAME)
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


def _record(access: AccessLog, status: int = 200, error: str = "", cause: str = "") -> None:
    access.record("GET", "/fill/1/1/a.test/x.jpg", status, "HIT", 0.123, error=error, cause=cause)


def _statuses(out: io.StringIO) -> list[str]:
    matches = [LINE.fullmatch(line) for line in out.getvalue().splitlines()]
    return [m.group(3) if m else "unparsed" for m in matches]


async def test_a_line_has_the_log_format_and_local_time() -> None:
    out = io.StringIO()
    access = AccessLog(out)
    before = time.time()
    _record(access, 404, "source_status", "404")
    after = time.time()
    match = LINE.fullmatch(out.getvalue().rstrip("\n"))
    assert match is not None, out.getvalue()
    stamp, _ms, status, cache, ms, rest = match.groups()
    assert (status, cache, ms, rest) == ("404", "HIT", "0.1", " error=source_status cause='404'")
    allowed = {
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in (int(before), int(after))
    }
    assert stamp in allowed


async def test_successes_wait_and_a_failure_writes_everything_in_order() -> None:
    out = io.StringIO()
    access = AccessLog(out)
    _record(access, 200)
    _record(access, 304)
    assert out.getvalue() == ""
    assert access.waiting == 2
    _record(access, 502)
    assert _statuses(out) == ["200", "304", "502"]
    assert access.waiting == 0


async def test_successes_are_written_after_the_interval() -> None:
    out = io.StringIO()
    access = AccessLog(out, interval=0.05)
    _record(access)
    assert out.getvalue() == ""
    await until(lambda: access.waiting == 0)
    assert out.getvalue().count("\n") == 1
    _record(access)  # a new batch arms a new timer
    assert access.waiting == 1
    await until(lambda: access.waiting == 0)
    assert out.getvalue().count("\n") == 2


async def test_a_full_buffer_is_written_without_waiting() -> None:
    out = io.StringIO()
    access = AccessLog(out, interval=3600)
    while not out.getvalue():
        _record(access)
    assert len(out.getvalue()) >= MAX_BUFFERED
    assert access.waiting == 0


async def test_access_log_off_keeps_failures_only() -> None:
    out = io.StringIO()
    access = AccessLog(out, successes=False)
    _record(access, 200)
    _record(access, 400)
    access.flush()
    assert _statuses(out) == ["400"]


async def test_nothing_below_the_loggers_level() -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    out = io.StringIO()
    access = AccessLog(out)
    _record(access, 500)
    access.flush()
    assert out.getvalue() == ""


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


async def test_a_failing_log_stream_does_not_fail_the_request() -> None:
    access = AccessLog(_Broken())
    _record(access, 500)  # must not raise
    assert access.waiting == 0


async def test_without_a_stream_it_writes_to_stderr_as_it_is_then(
    capsys: pytest.CaptureFixture[str],
) -> None:
    access = AccessLog()
    _record(access, 404)
    assert "status=404" in capsys.readouterr().err


async def test_a_line_carries_the_request_id() -> None:
    out = io.StringIO()
    access = AccessLog(out)
    access.record("GET", "/x", 502, "-", 1.0, error="source_status", request_id="abc-1")
    assert out.getvalue().endswith(" error=source_status request_id=abc-1\n")


async def test_the_json_form_has_the_stable_fields() -> None:
    out = io.StringIO()
    access = AccessLog(out, as_json=True)
    access.record(
        "GET",
        "/fill/1/1/a.test/x.jpg",
        404,
        "-",
        2.25,
        error="source_status",
        cause="404",
        request_id="r1",
    )
    access.record("HEAD", "/fill/1/1/a.test/x.jpg", 200, "HIT", 0.04)
    access.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("time"))
    assert first == {
        "level": "INFO",
        "logger": LOGGER_NAME,
        "message": "GET /fill/1/1/a.test/x.jpg 404",
        "request_id": "r1",
        "method": "GET",
        "path": "/fill/1/1/a.test/x.jpg",
        "status": 404,
        "cache": "-",
        "ms": 2.2,
        "error": "source_status",
        "cause": "404",
    }
    assert (second["method"], second["status"], second["cache"]) == ("HEAD", 200, "HIT")
    assert second["error"] is None
    assert second["request_id"] is None
