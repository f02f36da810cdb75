"""Admission control and the whole-request deadline."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

import images
from conftest import ServiceFactory
from origin import Gate, Origin
from previewer.render import imaging
from previewer.render.imaging import RenderJob
from waiting import until

pytestmark = pytest.mark.both_modes

BIG = images.jpeg(3000, 3000)


# the render pool's admission; in broker mode the queue's bound answers 503 (test_broker)
@pytest.mark.embedded_only
async def test_excess_renders_get_503_at_once_and_the_service_recovers(
    start_service: ServiceFactory, origin: Origin
) -> None:
    gate = Gate(BIG, expected=12)
    for i in range(12):  # distinct sources: each request fetches on its own
        origin.route(f"/big{i}.jpg", gate.handler)
    service = await start_service(workers="1", queue_size="1", gravity="attention")
    paths = [f"/fill/{300 + i}/{200 + i}/{origin.authority}/big{i}.jpg" for i in range(12)]
    tasks = [asyncio.ensure_future(service.get(p)) for p in paths]
    await gate.all_arrived.wait()
    gate.release()  # twelve bodies arrive together; one thread, one queue slot
    results = await asyncio.gather(*tasks)
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(200) >= 2, statuses
    assert statuses.count(503) >= 1, statuses
    assert set(statuses) == {200, 503}, statuses
    for status, headers, body in results:
        if status == 503:
            assert headers["Retry-After"] == "1"
            assert json.loads(body)["error"] == "overloaded"
    # nothing is left running, and the next request is served normally
    assert (await service.render_stage())["renders_in_progress"] == 0
    origin.add("/small.jpg", images.jpeg(200, 100))
    status, _, _ = await service.get(f"/fill/50/50/{origin.authority}/small.jpg")
    assert status == 200


async def test_request_deadline_gives_504(start_service: ServiceFactory, origin: Origin) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=images.jpeg(100, 100), content_type="image/jpeg")

    origin.route("/stall.jpg", stall)
    service = await start_service(request_timeout="0.3", fetch_timeout="30")
    try:
        status, headers, body = await service.get(f"/fill/20/20/{origin.authority}/stall.jpg")
    finally:
        release.set()
    assert status == 504
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body)["error"] == "request_timeout"


async def test_head_on_a_miss_renders_and_sends_no_body(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service()
    origin.add("/h.jpg", images.jpeg(300, 200))
    status, headers, body = await service.request("HEAD", f"/fill/30/20/{origin.authority}/h.jpg")
    assert status == 200
    assert body == b""
    assert headers["X-Cache"] == "MISS"
    assert int(headers["Content-Length"]) > 0
    status, headers, body = await service.get(f"/fill/30/20/{origin.authority}/h.jpg")
    assert headers["X-Cache"] == "HIT"
    assert len(body) == int(headers["Content-Length"])


async def test_request_deadline_abandons_the_render(
    start_service: ServiceFactory, origin: Origin
) -> None:
    # A 12000x12000 fill takes seconds to encode; the deadline is 0.5 s.
    source = images.jpeg(1200, 800)
    origin.add("/up.jpg", source)
    service = await start_service(
        request_timeout="0.5", max_dimension="16384", gravity="centre", workers="1"
    )
    started = time.monotonic()
    status, _, body = await service.get(f"/fill/12000/12000/{origin.authority}/up.jpg")
    assert status == 504
    assert json.loads(body)["error"] == "request_timeout"

    async def render_stopped() -> bool:
        return bool((await service.render_stage())["renders_in_progress"] == 0)

    await until(render_stopped, within=30)
    stopped = time.monotonic() - started
    # stopped well before the render could have finished on its own: sooner than a
    # fill of a quarter of its area takes, measured here, side by side
    begun = time.monotonic()
    quarter = RenderJob(6000, 6000, "centre", 80, 100_000_000)
    await asyncio.to_thread(imaging.render, source, quarter)
    baseline = time.monotonic() - begun
    assert stopped < baseline, f"stopped after {stopped:.2f}s; a quarter fill takes {baseline:.2f}s"
    health = json.loads((await service.get("/health"))[2])
    if service.worker is None:
        assert health["counters"]["abandoned"] == 1
    else:  # the worker gives up at the same deadline and answers request_timeout itself
        assert service.worker.worker.counters.failed == 1
    assert health["cache"]["entries"] == 0
    # and the pool is free for the next request at once
    status, _, _ = await service.get(f"/fill/40/40/{origin.authority}/up.jpg")
    assert status == 200
