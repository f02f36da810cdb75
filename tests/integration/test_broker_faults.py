"""Broker mode under faults: real worker processes, real signals, a real RabbitMQ node.

Each test starts a front (in this process, so its health can be read
directly) and `previewer worker` processes, then breaks something: kills a
worker with SIGKILL, stops one with SIGSTOP or SIGTERM, stops the broker,
fills the queue, feeds the front replies it does not expect. Which worker
fetched a source is read from the origin's side of the connection (the
socket's owner, by `ss`), never guessed. Tests that stop the broker run
their own node; the others use the session's node with a queue of their own.
The broker URL of every test carries a password, and no log line may show it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest
from aiohttp import web

import images
from conftest import Service, ServiceFactory, ServiceProcess, spawn_service
from origin import Gate, Origin
from previewer.broker import jobs
from previewer.render.renderer import BrokerHealth
from rabbitmq import RabbitNode
from waiting import until

pytestmark = [pytest.mark.fault, pytest.mark.broker, pytest.mark.subprocess]

JPEG = images.jpeg(640, 480)
GENEROUS = 60.0  # seconds: a bound for "eventually" on a loaded 2-core machine


def _with_user(node: RabbitNode) -> str:
    """Add a user with a random password to `node`; returns its URL."""
    user, password = f"previewer-{uuid.uuid4().hex[:8]}", "pw-" + secrets.token_hex(12)
    node.ctl("add_user", user, password)
    node.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    return f"amqp://{user}:{password}@127.0.0.1:{node.port}/"


def _password(url: str) -> str:
    return url.rsplit("@", 1)[0].rsplit(":", 1)[1]


def _owner(client: tuple[str, int], server: tuple[str, int]) -> int:
    """The pid of the process holding the client end of the connection `client` -> `server`.

    The whole four-tuple: an ephemeral port alone is not unique on a busy machine.
    """
    query = f"( src {client[0]}:{client[1]} and dst {server[0]}:{server[1]} )"
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = set(re.findall(r"pid=(\d+)", out))
    assert len(pids) == 1, f"no single owner of {client} -> {server}: {out!r}"
    return int(pids.pop())


@dataclass
class Fleet:
    """Workers as processes on one queue, and the logs of everything the test ran."""

    url: str
    queue: str
    folder: Path
    started: list[ServiceProcess] = field(default_factory=list)

    async def worker(self, *flags: str, slots: int = 1) -> ServiceProcess:
        """Start `previewer worker` (SLOTS render slots) and wait until it consumes."""
        cache = self.folder / f"worker-{len(self.started)}"
        args = [
            "--broker",
            self.url,
            "--broker-queue",
            self.queue,
            "--cache-dir",
            str(cache),
            "--allow-private-networks",
            "--workers",
            str(slots),
            "--fetch-timeout",
            "60",  # held sources are held for as long as a test needs
            "--log-level",
            "debug",
            *flags,
        ]
        process = await asyncio.to_thread(spawn_service, args, None, True, "worker")
        self.started.append(process)
        return process

    def logs(self) -> list[str]:
        return [line for process in self.started for line in process.log_lines]


@pytest.fixture
def fleet_factory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[[str], Fleet]]:
    """Fleets of workers; afterwards every process is gone and no log shows a password."""
    fleets: list[Fleet] = []

    def make(url: str) -> Fleet:
        fleet = Fleet(url, f"previewer.test.{uuid.uuid4().hex}", tmp_path)
        fleets.append(fleet)
        return fleet

    caplog.set_level(logging.DEBUG)
    yield make
    for fleet in fleets:
        for process in fleet.started:
            if process.proc.poll() is None:
                os.kill(process.proc.pid, signal.SIGCONT)
                process.proc.kill()
                process.proc.wait()
            process.close()
    for fleet in fleets:
        secret = _password(fleet.url)
        leaks = [line for line in fleet.logs() if secret in line]
        leaks += [r.getMessage() for r in caplog.records if secret in r.getMessage()]
        assert not leaks, leaks


@pytest.fixture
def shared_url(rabbit: RabbitNode) -> str:
    return _with_user(rabbit)


class Tracked:
    """An origin route that records which process fetched it, then delegates."""

    def __init__(self, handler: Callable[[web.Request], object]) -> None:
        self.handler = handler
        self.fetchers: list[int] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.fetchers.append(await asyncio.to_thread(_owner, peer[:2], local[:2]))
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, web.StreamResponse)
        return result


async def _front(start: ServiceFactory, fleet: Fleet, **settings: object) -> Service:
    return await start(broker=fleet.url, broker_queue=fleet.queue, **settings)


def _broker(service: Service) -> BrokerHealth:
    health = service.running.service.health().broker
    assert health is not None
    return health


async def _consumers(service: Service, count: int) -> None:
    await until(lambda: _broker(service).consumers == count, within=GENEROUS)


async def _stats(node: RabbitNode, queue: str) -> dict[str, int]:
    return await asyncio.to_thread(node.queue_stats, queue)


async def _holds(node: RabbitNode, queue: str, messages: int) -> bool:
    """Whether `queue` holds exactly `messages` messages, ready and unacknowledged."""
    return (await _stats(node, queue)).get("messages") == messages


async def _timed(service: Service, path: str) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    status, headers, body = await service.get(path)
    return status, dict(headers), body, time.monotonic() - started


def _size(body: bytes) -> tuple[int, int]:
    image = images.decode(body)
    return image.width, image.height


def _pid(process: ServiceProcess) -> int:
    return process.proc.pid


@pytest.fixture
async def own_node(tmp_path: Path) -> AsyncIterator[RabbitNode]:
    """A RabbitMQ node of the test's own, for tests that stop it."""
    node = RabbitNode(tmp_path / "rabbitmq", name="previewer-fault")
    await asyncio.to_thread(node.start)
    yield node
    await asyncio.to_thread(node.stop)


# --- 1. worker death --------------------------------------------------------------------------


async def test_a_worker_killed_mid_job_loses_nothing(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    gate = Gate(JPEG)
    tracked = Tracked(gate.handler)
    origin.route("/held.jpg", tracked)
    workers = [await fleet.worker(), await fleet.worker()]
    service = await _front(start_service, fleet, request_timeout="60")
    await _consumers(service, 2)

    request = asyncio.ensure_future(_timed(service, f"/fill/120/80/{origin.authority}/held.jpg"))
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)
    victim = next(w for w in workers if _pid(w) == tracked.fetchers[0])
    survivor = next(w for w in workers if w is not victim)
    victim.proc.kill()  # SIGKILL, mid-fetch: no reply, no ack
    assert victim.proc.wait(GENEROUS) == -signal.SIGKILL
    await until(lambda: len(tracked.fetchers) == 2, within=GENEROUS)  # delivered again
    assert tracked.fetchers[1] == _pid(survivor)
    gate.release()

    status, headers, body, _ = await asyncio.wait_for(request, GENEROUS)
    assert (status, headers["X-Cache"], _size(body)) == (200, "MISS", (120, 80))
    # the log is read by a thread of its own: the line may follow the answer by a moment
    await until(lambda: any("rendered" in line for line in survivor.log_lines), GENEROUS)
    await until(lambda: _holds(rabbit, fleet.queue, 0), within=GENEROUS)
    assert _broker(service).waiting == 0


# --- 2. broker outage -------------------------------------------------------------------------


async def test_a_broker_restart_under_load_is_503_fast_hits_go_on_and_all_reconnect(
    start_service: ServiceFactory,
    origin: Origin,
    own_node: RabbitNode,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(await asyncio.to_thread(_with_user, own_node))
    origin.add("/a.jpg", JPEG)
    worker = await fleet.worker(slots=2)
    service = await _front(start_service, fleet, request_timeout="30")
    await _consumers(service, 1)
    hit = f"/fill/120/80/{origin.authority}/a.jpg"
    assert (await service.get(hit))[0] == 200

    # (kind, status, seconds, started): a request is judged by when it started, since
    # one that started while the broker was down may end after the front reconnected
    outcomes: list[tuple[str, int, float, float]] = []
    stop = asyncio.Event()

    async def load(kind: str, width: int) -> None:
        while not stop.is_set():
            width += 1
            path = hit if kind == "hit" else f"/fill/{width}/80/{origin.authority}/a.jpg"
            started = time.monotonic()
            status, _, _, took = await _timed(service, path)
            outcomes.append((kind, status, took, started))
            await asyncio.sleep(0.05)  # pacing of the load, not synchronisation

    loaders = [
        asyncio.ensure_future(load(kind, width))
        for kind, width in (("hit", 0), ("miss", 10), ("miss", 1000))
    ]
    await until(lambda: sum(k == "miss" and s == 200 for k, s, _, _ in outcomes) >= 3)
    await asyncio.to_thread(own_node.stop)
    await until(lambda: not _broker(service).connected, within=GENEROUS)
    down = time.monotonic()
    await until(lambda: sum(k == "miss" and t >= down for k, _, _, t in outcomes) >= 6)
    back_up = time.monotonic()  # (the node starts only now)
    outage = [o for o in outcomes if down <= o[3] and o[3] + o[2] <= back_up]
    await asyncio.to_thread(own_node.start)
    await until(lambda: _broker(service).connected and _broker(service).consumers == 1, GENEROUS)
    after = time.monotonic()
    await until(
        lambda: sum(k == "miss" and s == 200 and t >= after for k, s, _, t in outcomes) >= 3
    )
    stop.set()
    await asyncio.gather(*loaders)

    assert worker.proc.poll() is None  # reconnected by itself, never restarted
    assert all(s in (200, 503) for _, s, _, _ in outcomes), outcomes  # no 500, no 504
    assert all(s == 200 for k, s, _, _ in outcomes if k == "hit"), outcomes
    misses = [(s, took) for k, s, took, _ in outage if k == "miss"]
    assert misses
    assert all(s == 503 and took < 5 for s, took in misses), misses
    reconnected = [o for o in outcomes if o[3] >= after]
    assert all(s == 200 for _, s, _, _ in reconnected), reconnected
    await until(
        lambda: any("broker connection restored" in line for line in worker.log_lines), GENEROUS
    )


async def _reply_queues(node: RabbitNode, queue: str) -> set[str]:
    names = (await asyncio.to_thread(node.ctl, "list_queues", "--no-table-headers", "name")).split()
    return {name for name in names if name.startswith(queue + ".reply.")}


async def _renamed(node: RabbitNode, queue: str, before: set[str]) -> bool:
    """Whether a reply queue exists that is not one of `before`."""
    return bool(await _reply_queues(node, queue) - before)


async def test_a_job_answered_503_at_a_broker_restart_is_dropped_not_rendered_or_refused(
    start_service: ServiceFactory,
    origin: Origin,
    own_node: RabbitNode,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    """A job a worker held when the broker stopped: its request got 503 at once, and
    the restart hands the job back to the queue, counted as a delivery. Nobody waits
    for it any more (the front's new connection has a reply queue of a new name), so
    the worker it comes back to drops it at INFO: no second fetch, no render, and no
    count towards the delivery limit; a worker killed afterwards finds nothing of it."""
    fleet = fleet_factory(await asyncio.to_thread(_with_user, own_node))
    gate = Gate(JPEG)
    held = Tracked(gate.handler)
    origin.route("/held-across-a-restart.jpg", held)
    worker = await fleet.worker(slots=1)
    service = await _front(start_service, fleet, request_timeout="120")
    await _consumers(service, 1)
    before = await _reply_queues(own_node, fleet.queue)
    assert len(before) == 1, before
    path = f"/fill/120/80/{origin.authority}/held-across-a-restart.jpg"
    request = asyncio.ensure_future(_timed(service, path))
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)
    assert held.fetchers == [_pid(worker)]

    # The worker is paused across the restart, so that the front is back, with its new
    # reply queue, before the job can reach a worker again.
    worker.proc.send_signal(signal.SIGSTOP)
    await asyncio.to_thread(own_node.stop)
    status, _, body, took = await asyncio.wait_for(request, GENEROUS)
    assert (status, json.loads(body)["error"]) == (503, "unavailable"), body
    assert took < 10
    await asyncio.to_thread(own_node.start)
    await until(lambda: _broker(service).connected, within=GENEROUS)
    await until(lambda: _renamed(own_node, fleet.queue, before), within=GENEROUS)
    after = await _reply_queues(own_node, fleet.queue)
    assert len(after) == 1, after
    assert not after & before, (before, after)
    await until(lambda: _holds(own_node, fleet.queue, 1), within=GENEROUS)  # it survived

    worker.proc.send_signal(signal.SIGCONT)
    dropped = "dropped: delivered again after its front stopped waiting for it"
    await until(lambda: any(dropped in line for line in worker.log_lines), within=GENEROUS)
    await until(lambda: _holds(own_node, fleet.queue, 0), within=GENEROUS)
    worker.proc.kill()
    assert worker.proc.wait(GENEROUS) == -signal.SIGKILL
    second = await fleet.worker(slots=1)
    await _consumers(service, 1)
    gate.release()
    assert held.fetchers == [_pid(worker)]  # fetched once, by the first delivery only
    assert await _holds(own_node, fleet.queue + ".dead", 0)  # not refused as poison

    # the same preview, asked again, is a new job and rendered
    status, headers, body, _ = await asyncio.wait_for(_timed(service, path), GENEROUS)
    assert (status, headers["X-Cache"], _size(body)) == (200, "MISS", (120, 80))
    assert held.fetchers == [_pid(worker), _pid(second)]
    worker.close()
    # (the AMQP client logs each failed reconnect at ERROR itself: previewer's lines only)
    errors = [line for line in fleet.logs() if " ERROR previewer" in line or "refused" in line]
    assert not errors, errors


# --- 3. no worker, and a worker that stopped answering; 8. deadlines -------------------------


async def test_without_any_worker_a_miss_is_503_unavailable_at_once(
    start_service: ServiceFactory,
    origin: Origin,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    origin.add("/a.jpg", JPEG)
    service = await _front(start_service, fleet, request_timeout="30")
    await _consumers(service, 0)  # the front has polled the queue and knows
    for width in (100, 101, 102):
        status, headers, body, took = await _timed(
            service, f"/fill/{width}/80/{origin.authority}/a.jpg"
        )
        assert (status, json.loads(body)["error"], headers["Retry-After"]) == (
            503,
            "unavailable",
            "1",
        )
        assert took < 5
    assert _broker(service).published == 0
    assert origin.hits["/a.jpg"] == 0


async def test_a_stopped_worker_means_504_at_the_deadline_and_expired_jobs_are_never_rendered(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    origin.add("/taken.jpg", JPEG)
    origin.add("/queued.jpg", JPEG)
    worker = await fleet.worker(slots=1)
    timeout = 3.0
    service = await _front(start_service, fleet, request_timeout=str(timeout))
    await _consumers(service, 1)
    os.kill(_pid(worker), signal.SIGSTOP)  # alive and connected, but answers nothing
    # the first job goes to the stopped worker (its one prefetch slot); the second
    # waits in the queue behind it
    taken = asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/taken.jpg"))
    await until(lambda: _holds(rabbit, fleet.queue, 1), within=GENEROUS)
    queued = asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/queued.jpg"))
    for request in (taken, queued):
        status, _, body, took = await asyncio.wait_for(request, GENEROUS)
        assert (status, json.loads(body)["error"]) == (504, "request_timeout")
        assert timeout - 0.5 < took < timeout + 10
    # the queued job dies in the broker by its TTL, while the worker is still stopped
    await until(lambda: _stats_ready(rabbit, fleet.queue, 0), within=GENEROUS)
    os.kill(_pid(worker), signal.SIGCONT)
    await until(lambda: any("deadline passed" in line for line in worker.log_lines), GENEROUS)
    await until(lambda: _holds(rabbit, fleet.queue, 0), within=GENEROUS)
    assert (origin.hits["/taken.jpg"], origin.hits["/queued.jpg"]) == (0, 0)
    # the broker dead-letters a job that expired in the queue: no worker saw it
    assert (await _stats(rabbit, fleet.queue + ".dead"))["messages"] == 1
    assert sum("deadline passed" in line for line in worker.log_lines) == 1
    assert not any("queued.jpg" in line for line in worker.log_lines)
    assert _broker(service).waiting == 0
    assert _broker(service).expired == 2  # both requests stopped waiting for their reply


async def _stats_ready(node: RabbitNode, queue: str, ready: int) -> bool:
    return (await _stats(node, queue)).get("ready") == ready


# --- 4. a slow worker next to a fast one --------------------------------------------------------


async def test_a_slow_worker_does_not_starve_a_fast_one(
    start_service: ServiceFactory,
    origin: Origin,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    gate = Gate(JPEG)
    held = Tracked(gate.handler)
    origin.route("/held.jpg", held)
    fast_route = Tracked(lambda request: web.Response(body=JPEG, content_type="image/jpeg"))
    for i in range(8):
        origin.route(f"/fast{i}.jpg", fast_route)
    slow = await fleet.worker(slots=1)
    service = await _front(start_service, fleet, request_timeout="60")
    await _consumers(service, 1)
    stuck = asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/held.jpg"))
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)  # the slow worker is stuck on it
    fast = await fleet.worker(slots=1)
    await _consumers(service, 2)

    results = await asyncio.wait_for(
        asyncio.gather(
            *(_timed(service, f"/fill/90/60/{origin.authority}/fast{i}.jpg") for i in range(8))
        ),
        GENEROUS,
    )
    assert [status for status, *_ in results] == [200] * 8
    assert set(fast_route.fetchers) == {_pid(fast)}  # none waited behind the held job
    assert held.fetchers == [_pid(slow)]
    assert not stuck.done()
    gate.release()
    status, _, body, _ = await asyncio.wait_for(stuck, GENEROUS)
    assert (status, _size(body)) == (200, (90, 60))


# --- 5. a poison job ----------------------------------------------------------------------------


async def test_a_job_that_kills_every_worker_is_dead_lettered_with_a_clean_422(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    limit = 2

    async def crash(request: web.Request) -> web.Response:
        # what a decoder crash does to the worker that fetched this source
        victim = poison.fetchers[-1]
        assert victim in {_pid(w) for w in workers}, "only ever a worker of this test"
        os.kill(victim, signal.SIGKILL)
        await asyncio.Event().wait()  # never answers: its client is gone
        raise AssertionError("unreachable")

    poison = Tracked(crash)
    origin.route("/poison.jpg", poison)
    origin.add("/fine.jpg", JPEG)
    flags = ("--broker-delivery-limit", str(limit))
    workers = [await fleet.worker(*flags)]
    service = await _front(
        start_service, fleet, request_timeout="90", broker_delivery_limit=str(limit)
    )
    await _consumers(service, 1)

    async def supervise() -> None:
        """Start a new worker whenever the last one died, as an orchestrator would."""
        while True:
            await until(lambda: workers[-1].proc.poll() is not None, within=3600)
            workers.append(await fleet.worker(*flags))

    supervisor = asyncio.ensure_future(supervise())
    try:
        status, _, body, _ = await asyncio.wait_for(
            _timed(service, f"/fill/90/60/{origin.authority}/poison.jpg"), 90
        )
        # The worker that refused the job can answer before its start-up is seen as done;
        # the supervisor is stopped only once it holds that worker, so none is lost.
        await until(lambda: len(workers) > limit, within=GENEROUS)
    finally:
        supervisor.cancel()
    assert (status, json.loads(body)["error"]) == (422, "source_not_image")
    assert len(poison.fetchers) == limit  # each delivery before the limit ended its worker
    assert [w.proc.returncode for w in workers[:limit]] == [-signal.SIGKILL] * limit
    refuser = workers[limit]
    await until(lambda: any("refused" in line for line in refuser.log_lines), GENEROUS)
    refused = [line for line in refuser.log_lines if "refused" in line]
    assert len(refused) == 1, refused
    assert f"delivered {limit + 1} times" in refused[0]
    await until(lambda: _holds(rabbit, fleet.queue + ".dead", 1), within=GENEROUS)
    await until(lambda: _holds(rabbit, fleet.queue, 0), within=GENEROUS)
    # the worker that refused it goes on working
    status, _, body, _ = await _timed(service, f"/fill/90/60/{origin.authority}/fine.jpg")
    assert (status, _size(body)) == (200, (90, 60))
    assert workers[limit].proc.poll() is None


# --- 6. a full queue ----------------------------------------------------------------------------


async def test_past_the_queue_bound_misses_are_503_overloaded_at_once(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    bound = 3
    gate = Gate(JPEG)
    origin.route("/held.jpg", gate.handler)
    await fleet.worker("--broker-queue-length", str(bound), slots=1)
    service = await _front(
        start_service, fleet, request_timeout="60", broker_queue_length=str(bound)
    )
    await _consumers(service, 1)
    # the one render slot is busy: every further job waits in the queue
    waiting = [asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/held.jpg"))]
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)
    refused: list[tuple[dict[str, str], bytes, float]] = []
    width = 100
    while len(refused) < 3:  # one at a time, so that each miss sees the queue as it is
        width += 1
        request = asyncio.ensure_future(
            _timed(service, f"/fill/{width}/60/{origin.authority}/held.jpg")
        )
        done, _ = await asyncio.wait({request}, timeout=1)  # accepted ones wait for the gate
        if not done:
            await until(lambda: _broker(service).published == len(waiting) + 1, GENEROUS)
            waiting.append(request)
            assert len(waiting) <= bound + 2, "the queue took far more than its bound"
            continue
        status, headers, body, took = request.result()
        assert status == 503, (status, body)
        refused.append((headers, body, took))
    # a quorum queue checks its bound after each enqueue and then tells publishers
    # to stop: one publish at a time, the job that crosses the bound is accepted
    # (list_queues reports a quorum queue's counts with a delay: wait for them)
    assert _broker(service).published == len(waiting)
    await until(lambda: _stats_ready(rabbit, fleet.queue, len(waiting) - 1), within=GENEROUS)
    for headers, body, took in refused:
        assert (json.loads(body)["error"], headers["Retry-After"]) == ("overloaded", "1")
        assert took < 5
    assert bound <= len(waiting) - 1 <= bound + 1
    assert _broker(service).refused_full == len(refused)
    gate.release()
    for request in waiting:
        status, *_ = await asyncio.wait_for(request, GENEROUS)
        assert status == 200


# --- 7. duplicates and late replies ------------------------------------------------------------


async def test_replies_nobody_waits_for_are_counted_and_dropped(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    """A worker that answers every job twice, then once more late, and a stray reply."""
    fleet = fleet_factory(shared_url)
    service = await _front(start_service, fleet, request_timeout="30")
    await _consumers(service, 0)
    preview = images.jpeg(90, 60)
    answered: list[tuple[str, str]] = []  # (reply_to, correlation id)
    connection = await aio_pika.connect(shared_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(fleet.queue, ensure=False)

        async def reply(to: str, correlation: str) -> None:
            body, headers = jobs.encode_reply(jobs.Reply(preview, "image/jpeg", True, True))
            message = aio_pika.Message(body, headers=headers, correlation_id=correlation)
            await channel.default_exchange.publish(message, routing_key=to)

        async def twice(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            assert message.reply_to
            assert message.correlation_id
            await reply(message.reply_to, message.correlation_id)
            await reply(message.reply_to, message.correlation_id)
            answered.append((message.reply_to, message.correlation_id))
            await message.ack()

        await queue.consume(twice)
        await _consumers(service, 1)
        for width in (90, 91):
            status, _, body, _ = await _timed(service, f"/fill/{width}/60/{origin.authority}/a.jpg")
            assert (status, body) == (200, preview)
        await until(lambda: _broker(service).unexpected_replies == 2)
        to, correlation = answered[0]
        await reply(to, correlation)  # late: long answered
        await reply(to, uuid.uuid4().hex)  # never asked
        await until(lambda: _broker(service).unexpected_replies == 4)
    broker = _broker(service)
    assert (broker.published, broker.replies, broker.waiting) == (2, 2, 0)
    status, headers, _, _ = await _timed(service, f"/fill/90/60/{origin.authority}/a.jpg")
    assert (status, headers["X-Cache"]) == (200, "HIT")


async def test_a_front_lost_mid_job_costs_its_worker_nothing(
    start_service: ServiceFactory,
    origin: Origin,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
    tmp_path: Path,
) -> None:
    """A front killed while its job renders: the reply has nowhere to go, and the
    worker (one render slot, so one job at a time) still acks it and takes the next."""
    fleet = fleet_factory(shared_url)
    gate = Gate(JPEG)
    origin.route("/held-for-a-lost-front.jpg", gate.handler)
    worker = await fleet.worker(slots=1)
    args = ["--broker", fleet.url, "--broker-queue", fleet.queue, "--allow-private-networks"]
    lost = await asyncio.to_thread(
        spawn_service, [*args, "--cache-dir", str(tmp_path / "lost-front")]
    )
    path = f"/fill/120/80/{origin.authority}/held-for-a-lost-front.jpg"
    request = asyncio.ensure_future(asyncio.to_thread(_get_status, lost.url + path))
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)
    assert lost.stop(signal.SIGKILL) == -signal.SIGKILL  # its reply queue goes with it
    with pytest.raises(ConnectionError):  # RemoteDisconnected: the front never answers
        await request
    gate.release()
    await until(lambda: any("rendered" in line for line in worker.log_lines), within=GENEROUS)

    service = await _front(start_service, fleet, request_timeout="30")
    after = Gate(JPEG)
    after.release()
    origin.route("/after-the-lost-front.jpg", after.handler)
    path = f"/fill/90/60/{origin.authority}/after-the-lost-front.jpg"
    status, headers, body, _ = await _timed(service, path)
    assert status == 200, body
    assert (headers["X-Cache"], _size(body)) == ("MISS", (90, 60))
    assert worker.proc.poll() is None
    assert not [line for line in worker.log_lines if "Traceback" in line or "ERROR" in line]


def _get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=GENEROUS) as response:
        return int(response.status)


# --- 9. SIGTERM ---------------------------------------------------------------------------------


async def test_on_sigterm_a_worker_finishes_its_job_and_leaves_the_queued_one_to_another(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
) -> None:
    fleet = fleet_factory(shared_url)
    gate = Gate(JPEG)
    held = Tracked(gate.handler)
    origin.route("/held.jpg", held)
    later = Tracked(lambda request: web.Response(body=JPEG, content_type="image/jpeg"))
    origin.route("/later.jpg", later)
    leaving = await fleet.worker("--shutdown-timeout", "60", slots=1)
    service = await _front(start_service, fleet, request_timeout="60")
    await _consumers(service, 1)
    first = asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/held.jpg"))
    await asyncio.wait_for(gate.all_arrived.wait(), GENEROUS)
    second = asyncio.ensure_future(_timed(service, f"/fill/90/60/{origin.authority}/later.jpg"))
    await until(lambda: _stats_ready(rabbit, fleet.queue, 1), within=GENEROUS)

    leaving.proc.send_signal(signal.SIGTERM)
    await until(lambda: any("stopping" in line for line in leaving.log_lines), GENEROUS)
    # (the queue still counts it as a consumer while it holds a job unacknowledged)
    taking_over = await fleet.worker(slots=1)
    status, _, body, _ = await asyncio.wait_for(second, GENEROUS)
    assert (status, _size(body)) == (200, (90, 60))
    assert later.fetchers == [_pid(taking_over)]
    assert leaving.proc.poll() is None  # still finishing its own job
    gate.release()
    status, _, body, _ = await asyncio.wait_for(first, GENEROUS)
    assert (status, _size(body)) == (200, (90, 60))
    assert held.fetchers == [_pid(leaving)]
    assert await asyncio.to_thread(leaving.proc.wait, GENEROUS) == 0
    await until(lambda: _holds(rabbit, fleet.queue, 0), within=GENEROUS)


# --- the topology's own bounds and mismatches --------------------------------------------------


async def test_the_dead_letter_queue_is_bounded_like_the_job_queue(
    rabbit: RabbitNode, shared_url: str, fleet_factory: Callable[[str], Fleet]
) -> None:
    fleet = fleet_factory(shared_url)
    bound = 2
    worker = await fleet.worker("--broker-queue-length", str(bound))
    connection = await aio_pika.connect(shared_url)
    async with connection:
        channel = await connection.channel()
        for i in range(bound + 3):
            message = aio_pika.Message(f"garbage {i}".encode())
            await channel.default_exchange.publish(message, routing_key=fleet.queue)
    await until(
        lambda: sum("malformed job" in line for line in worker.log_lines) == bound + 3, GENEROUS
    )
    await until(lambda: _holds(rabbit, fleet.queue + ".dead", bound), within=GENEROUS)


async def test_a_worker_whose_queue_settings_differ_exits_with_the_reason(
    start_service: ServiceFactory, shared_url: str, fleet_factory: Callable[[str], Fleet]
) -> None:
    fleet = fleet_factory(shared_url)
    service = await _front(start_service, fleet, broker_queue_length="10")
    await _consumers(service, 0)  # the front declared the queue
    args = ["--broker", shared_url, "--broker-queue", fleet.queue, "--broker-queue-length", "20"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "previewer", "worker", *args],
        capture_output=True,
        text=True,
        timeout=GENEROUS,
    )
    assert done.returncode == 1, done.stderr
    assert "refused the queue set-up" in done.stderr
    assert "--broker-queue-length" in done.stderr
    assert "worker consuming" not in done.stderr
    assert _password(shared_url) not in done.stderr


async def test_a_front_whose_queue_settings_differ_says_so_and_answers_503(
    start_service: ServiceFactory,
    origin: Origin,
    shared_url: str,
    fleet_factory: Callable[[str], Fleet],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = fleet_factory(shared_url)
    origin.add("/a.jpg", JPEG)
    connection = await aio_pika.connect(shared_url)
    async with connection:
        channel = await connection.channel()
        arguments = {"x-queue-type": "quorum", "x-max-length": 20}
        await channel.declare_queue(fleet.queue, durable=True, arguments=arguments)
    service = await _front(start_service, fleet, broker_queue_length="10")
    await until(
        lambda: any("refused the queue set-up" in r.getMessage() for r in caplog.records),
        GENEROUS,
    )
    assert not _broker(service).connected
    status, _, body, took = await _timed(service, f"/fill/90/60/{origin.authority}/a.jpg")
    assert (status, json.loads(body)["error"]) == (503, "unavailable")
    assert took < 5
