"""previewer.observe.logs: request ids, and the two line formats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from previewer.observe import logs


@pytest.mark.parametrize(
    "sent", ["a", "0123456789abcdef0123456789abcdef", "Root:1-5759e988.x_y-z", "x" * 128]
)
def test_a_well_formed_id_is_kept(sent: str) -> None:
    assert logs.request_id_for(sent) == sent


@pytest.mark.parametrize(
    "sent", [None, "", "x" * 129, "with space", "a;b", "a=b", "new\nline", "é", "a/b"]
)
def test_any_other_id_is_replaced_by_a_new_one(sent: str | None) -> None:
    made = logs.request_id_for(sent)
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert made != logs.request_id_for(sent)


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(log_format: str) -> io.StringIO:
    logs.setup("debug", log_format)
    (handler,) = logging.getLogger().handlers
    out = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    return out


@pytest.mark.usefixtures("root_restored")
async def test_text_lines_end_with_the_request_id_inside_a_request_and_its_threads() -> None:
    out = capture("text")
    log = logging.getLogger("previewer.test")
    log.info("outside")
    token = logs.current_request.set("rid-1")
    try:
        log.warning("inside %d", 1)
        await asyncio.to_thread(log.info, "on a thread")
    finally:
        logs.current_request.reset(token)
    first, second, third = out.getvalue().splitlines()
    assert re.fullmatch(r"\S+ \S+ INFO previewer\.test outside", first)
    assert second.endswith(" WARNING previewer.test inside 1 request_id=rid-1")
    assert third.endswith(" INFO previewer.test on a thread request_id=rid-1")


@pytest.mark.usefixtures("root_restored")
def test_json_lines_have_the_stable_fields() -> None:
    out = capture("json")
    log = logging.getLogger("previewer.test")
    token = logs.current_request.set("rid-2")
    try:
        log.error('said "%s"', "x")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logs.current_request.reset(token)
    log.debug("after")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines()[:3])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("time"))
    assert first == {
        "level": "ERROR",
        "logger": "previewer.test",
        "message": 'said "x"',
        "request_id": "rid-2",
    }
    assert "ValueError: boom" in second["exception"]
    assert third["request_id"] is None
    assert third["level"] == "DEBUG"
