"""Broker mode end to end: a front and workers talking through a real RabbitMQ node.

The HTTP behaviour shared with the embedded mode is covered by the
`both_modes` modules; this file covers what only broker mode has: the
queue's bounds, its dead letters, a front without workers, health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aiormq
import pytest

import images
from conftest import Service, ServiceFactory
from origin import Origin
from previewer.broker import jobs
from previewer.broker.front import BrokerRenderer
from previewer.broker.link import Link, declare_jobs
from previewer.config.settings import BrokerConfig
from previewer.errors import BadImage, RequestTimeout, Unavailable
from previewer.options import PreviewOptions, parse_source
from rabbitmq import RabbitNode
from waiting import until

pytestmark = pytest.mark.broker


@pytest.fixture
def mode() -> str:
    return "broker"


async def _preview(service: Service, origin: Origin, path: str = "/a.jpg") -> tuple[int, bytes]:
    status, _, body = await service.get(f"/fill/120/80/{origin.authority}{path}")
    return status, body


async def test_a_miss_is_rendered_by_the_worker_and_then_served_from_the_front(
    start_service: ServiceFactory, origin: Origin
) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    service = await start_service()
    status, headers, body = await service.get(f"/fill/120/80/{origin.authority}/a.jpg")
    assert (status, headers["X-Cache"]) == (200, "MISS")
    assert (images.decode(body).width, images.decode(body).height) == (120, 80)
    assert service.worker is not None
    assert service.worker.worker.counters.rendered == 1
    status, headers, again = await service.get(f"/fill/120/80/{origin.authority}/a.jpg")
    assert (status, headers["X-Cache"], again) == (200, "HIT", body)
    assert service.worker.worker.counters.jobs == 1
    assert origin.hits["/a.jpg"] == 1
    broker = service.running.service.health().broker
    assert broker is not None
    assert (broker.connected, broker.consumers, broker.published, broker.replies) == (
        True,
        1,
        1,
        1,
    )


async def test_health_reports_the_broker(start_service: ServiceFactory) -> None:
    service = await start_service()
    status, _, body = await service.get("/health")
    assert status == 200
    broker = json.loads(body)["broker"]
    assert (broker["connected"], broker["consumers"], broker["waiting"]) == (True, 1, 0)


async def test_the_worker_s_errors_reach_the_client_as_the_embedded_mode_answers_them(
    start_service: ServiceFactory, origin: Origin
) -> None:
    origin.add("/gone.jpg", b"", status=404)
    origin.add("/text.jpg", b"not an image")
    origin.add("/broken.jpg", b"", status=500)
    service = await start_service()
    for path, status, code in (
        ("/gone.jpg", 404, "source_status"),
        ("/text.jpg", 422, "source_not_image"),
        ("/broken.jpg", 502, "source_status"),
    ):
        got, headers, body = await service.get(f"/fill/120/80/{origin.authority}{path}")
        assert (got, json.loads(body)["error"]) == (status, code), path
        assert headers["Cache-Control"] == "no-store"


async def test_without_a_worker_a_miss_is_503_at_once_and_hits_still_work(
    start_service: ServiceFactory,
    origin: Origin,
    rabbit: RabbitNode,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    service = await start_service()
    status, _ = await _preview(service, origin)
    assert status == 200
    # the worker stops: the front sees no consumer on the queue
    assert service.worker is not None
    await service.worker.consumer.stop(grace=5)
    await until(lambda: service.running.service.health().broker.consumers == 0, within=15)  # type: ignore[union-attr]
    status, headers, body = await service.get(f"/fill/121/80/{origin.authority}/a.jpg")
    assert (status, json.loads(body)["error"], headers["Retry-After"]) == (503, "unavailable", "1")
    status, headers, _ = await service.get(f"/fill/120/80/{origin.authority}/a.jpg")
    assert (status, headers["X-Cache"]) == (200, "HIT")


async def _publish_raw(node: RabbitNode, queue: str, body: bytes) -> None:
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


def _job(origin: Origin, deadline: float | None = None) -> jobs.Job:
    """A 10x10 fill of the origin's /a.jpg, due in 30 s unless `deadline` says otherwise."""
    options = PreviewOptions(
        operation="fill",
        width=10,
        height=10,
        gravity="centre",
        quality=80,
        source=parse_source(f"{origin.authority}/a.jpg"),
    )
    return jobs.Job(options, [], None, time.time() + 30 if deadline is None else deadline)


def _job_body(origin: Origin, deadline: float) -> bytes:
    return jobs.encode_job(_job(origin, deadline))


def _fit_job_as_version_1() -> bytes:
    """A fit job labelled version 1, which cannot carry fit: what no front sends."""
    options = PreviewOptions(
        operation="fit",
        width=10,
        height=10,
        gravity="centre",
        quality=80,
        source=parse_source("example.com/a.jpg"),
    )
    document = json.loads(jobs.encode_job(jobs.Job(options, [], None, 4e9)))
    assert document["v"] == 2
    return json.dumps({**document, "v": 1}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x01 garbage",
        b'{"v": 99}',
        b'{"v": 1, "options": {"width": "x"}}',
        _fit_job_as_version_1(),
    ],
    ids=["garbage", "unknown-version", "bad-field", "fit-in-version-1"],
)
async def test_a_malformed_job_is_dead_lettered_and_the_worker_goes_on(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode, body: bytes
) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    queue = f"previewer.test.{uuid.uuid4().hex}"
    service = await start_service(broker_queue=queue)
    await _publish_raw(rabbit, queue, body)
    assert service.worker is not None
    await until(lambda: service.worker.worker.counters.malformed == 1)  # type: ignore[union-attr]
    await until(lambda: rabbit.queue_stats(queue + ".dead").get("messages") == 1, within=15)
    status, _ = await _preview(service, origin)
    assert status == 200


async def test_a_job_whose_deadline_passed_is_dropped_unrendered(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode
) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    queue = f"previewer.test.{uuid.uuid4().hex}"
    service = await start_service(broker_queue=queue)
    await _publish_raw(rabbit, queue, _job_body(origin, deadline=1.0))
    assert service.worker is not None
    await until(lambda: service.worker.worker.counters.expired == 1)  # type: ignore[union-attr]
    assert origin.hits["/a.jpg"] == 0
    assert service.worker.worker.counters.rendered == 0


async def test_a_channel_closed_before_the_connection_counts_as_lost_is_503_not_500(
    start_service: ServiceFactory, origin: Origin
) -> None:
    """While the broker goes down, the front's channel can close before its connection
    counts as lost; a miss published in that moment is 503 `unavailable`."""
    origin.add("/a.jpg", images.jpeg(640, 480))
    service = await start_service()
    status, _ = await _preview(service, origin)
    assert status == 200
    renderer = service.running.service._renderer
    channel = renderer._channel  # type: ignore[attr-defined]
    await channel.close()
    assert renderer._link.connected  # type: ignore[attr-defined]
    status, headers, body = await service.get(f"/fill/121/80/{origin.authority}/a.jpg")
    assert (status, json.loads(body)["error"], headers["Retry-After"]) == (503, "unavailable", "1")


async def test_a_front_channel_reopened_after_a_channel_error_still_gets_its_replies(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode
) -> None:
    """A channel error (here a passive declare of a queue that does not exist, made
    on the front's own channel) closes the channel and not the connection. aio-pika
    opens the channel again; the front consumes its reply queue again (the same queue:
    the connection, and the requests waiting on it, are still there), and misses go on
    working instead of waiting for replies nobody reads."""
    origin.add("/a.jpg", images.jpeg(640, 480))
    service = await start_service(request_timeout="20")
    assert (await _preview(service, origin))[0] == 200
    renderer = service.running.service._renderer
    replies = renderer._reply_queue  # type: ignore[attr-defined]
    channel = renderer._channel  # type: ignore[attr-defined]
    underlay = await channel.get_underlay_channel()

    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await underlay.queue_declare(f"missing-{uuid.uuid4().hex}", passive=True)
    await until(lambda: _reopened(channel, underlay), within=30)
    await until(lambda: _consumers(rabbit, replies, 1), within=30)
    assert renderer._reply_queue == replies  # type: ignore[attr-defined]
    status, _, body = await service.get(f"/fill/121/80/{origin.authority}/a.jpg")
    assert status == 200, body
    assert service.worker is not None
    assert service.worker.worker.counters.rendered == 2


async def _reopened(channel: aio_pika.abc.AbstractRobustChannel, before: object) -> bool:
    return await channel.get_underlay_channel() is not before


async def _consumers(node: RabbitNode, queue: str, count: int) -> bool:
    return (await asyncio.to_thread(node.queue_stats, queue)).get("consumers") == count


async def test_a_job_whose_reply_never_comes_ends_at_its_deadline(
    rabbit: RabbitNode, origin: Origin
) -> None:
    """A job taken by a worker that never answers (its reply lost, as across a broker
    restart) ends with 504 at its deadline; before, it waited forever, and so did
    every later request for the same preview, since they join the same flight."""
    config = BrokerConfig(url=rabbit.url, queue=f"silent-{uuid.uuid4().hex[:8]}")
    renderer = BrokerRenderer(config, default_timeout=60)
    holder = await aio_pika.connect(rabbit.url)  # takes jobs and never answers
    try:
        queue = await declare_jobs(await holder.channel(), config)

        async def hold(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        await queue.consume(hold, no_ack=False)
        await renderer.load()
        await renderer.wait_connected()
        await until(lambda: renderer.health().broker.consumers == 1, within=15)  # type: ignore[union-attr]
        options = PreviewOptions(
            operation="fill",
            width=10,
            height=10,
            gravity="centre",
            quality=80,
            source=parse_source(f"{origin.authority}/a.jpg"),
        )
        call = renderer.call(jobs.Job(options, [], None, time.time() + 1.0))
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(call, timeout=30)
        assert renderer.health().broker.waiting == 0  # type: ignore[union-attr]
    finally:
        await renderer.close()
        await holder.close()


async def _one(
    queue: aio_pika.abc.AbstractQueue, *, held: bool
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of `queue`, polled with basic.get (the broker's state).

    `held`: taken unacknowledged, so the broker delivers it again when the
    connection closes.
    """
    got: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def one() -> bool:
        message = await queue.get(no_ack=not held, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await until(one, within=30)
    return got[0]


async def _returned(node: RabbitNode, queue: str, times: int) -> None:
    """Take the queue's one job on a connection that then closes, `times` times.

    As a worker that dies holding a job: the broker delivers it again, with
    its delivery count raised by one each time.
    """
    for _ in range(times):
        connection = await aio_pika.connect(node.url)
        async with connection:
            channel = await connection.channel()
            await _one(await channel.get_queue(queue, ensure=False), held=True)


async def _redelivered_job(
    node: RabbitNode, origin: Origin, queue: str, reply_to: str, times: int
) -> None:
    """One job for /a.jpg, replied to `reply_to`, delivered `times` times before."""
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        await declare_jobs(channel, BrokerConfig(url=node.url, queue=queue))
        body = _job_body(origin, deadline=time.time() + 60)
        message = aio_pika.Message(body, reply_to=reply_to, correlation_id="job-1")
        await channel.default_exchange.publish(message, routing_key=queue)
    await _returned(node, queue, times)


async def test_a_job_delivered_again_after_its_reply_queue_went_is_dropped_unrendered(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode
) -> None:
    """The front that waited for it is gone (its exclusive reply queue with it):
    the worker acknowledges the job without fetching or rendering."""
    origin.add("/a.jpg", images.jpeg(640, 480))
    queue = f"previewer.test.{uuid.uuid4().hex}"
    await _redelivered_job(rabbit, origin, queue, f"gone-{uuid.uuid4().hex}", times=1)
    service = await start_service(broker_queue=queue)
    assert service.worker is not None
    counters = service.worker.worker.counters
    await until(lambda: counters.orphaned == 1)
    assert (counters.jobs, counters.redelivered, counters.rendered) == (1, 1, 0)
    assert origin.hits["/a.jpg"] == 0
    await until(lambda: rabbit.queue_stats(queue).get("messages") == 0, within=15)
    assert rabbit.queue_stats(queue + ".dead").get("messages") == 0


async def test_a_job_delivered_again_to_a_waiting_front_is_rendered_and_answered(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode
) -> None:
    """Its reply queue still exists: the worker renders it and replies there."""
    origin.add("/a.jpg", images.jpeg(640, 480))
    queue = f"previewer.test.{uuid.uuid4().hex}"
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(f"replies-{uuid.uuid4().hex}", auto_delete=True)
        await _redelivered_job(rabbit, origin, queue, replies.name, times=1)
        service = await start_service(broker_queue=queue)
        reply = await _one(replies, held=False)
    assert reply.correlation_id == "job-1"
    preview = jobs.decode_reply(reply.body, reply.headers)
    assert (images.decode(preview.body).width, images.decode(preview.body).height) == (10, 10)
    assert service.worker is not None
    counters = service.worker.worker.counters
    assert (counters.redelivered, counters.orphaned, counters.rendered) == (1, 0, 1)


async def test_a_job_delivered_up_to_the_limit_is_answered_422_and_dead_lettered(
    start_service: ServiceFactory, origin: Origin, rabbit: RabbitNode
) -> None:
    """Each earlier delivery ended its worker: the next worker refuses it unrendered,
    replies 422 to its front (whose exclusive reply queue is held by the front's own
    connection) and dead-letters it, so a poison job cannot loop."""
    origin.add("/a.jpg", images.jpeg(640, 480))
    queue = f"previewer.test.{uuid.uuid4().hex}"
    limit = 2  # --broker-delivery-limit's default
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        await _redelivered_job(rabbit, origin, queue, replies.name, times=limit)
        service = await start_service(broker_queue=queue)
        reply = await _one(replies, held=False)
    with pytest.raises(BadImage) as refused:
        jobs.decode_reply(reply.body, reply.headers)
    assert refused.value.status == 422
    assert service.worker is not None
    counters = service.worker.worker.counters
    assert (counters.poison, counters.redelivered, counters.rendered) == (1, 1, 0)
    assert origin.hits["/a.jpg"] == 0
    await until(lambda: rabbit.queue_stats(queue + ".dead").get("messages") == 1, within=15)


@contextlib.asynccontextmanager
async def _front_with_worker(
    rabbit: RabbitNode, answer: Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]
) -> AsyncIterator[BrokerRenderer]:
    """A front on a queue of its own, whose one consumer handles each job with `answer`."""
    config = BrokerConfig(url=rabbit.url, queue=f"scripted-{uuid.uuid4().hex[:8]}")
    renderer = BrokerRenderer(config, default_timeout=60)
    worker = await aio_pika.connect(rabbit.url)
    try:
        channel = await worker.channel()
        queue = await declare_jobs(channel, config)

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await answer(message)
            await message.ack()

        await queue.consume(handle, no_ack=False)
        await renderer.load()
        await renderer.wait_connected()
        await until(lambda: renderer.health().broker.consumers == 1, within=15)  # type: ignore[union-attr]
        yield renderer
    finally:
        await renderer.close()
        await worker.close()


async def test_a_malformed_reply_is_503_unavailable(rabbit: RabbitNode, origin: Origin) -> None:
    async def answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert message.reply_to is not None
        # a reply version no worker sends
        reply = aio_pika.Message(b"?", headers={"v": 99}, correlation_id=message.correlation_id)
        await message.channel.basic_publish(
            reply.body, routing_key=message.reply_to, properties=reply.properties
        )

    async with _front_with_worker(rabbit, answer) as renderer:
        with pytest.raises(Unavailable, match="malformed reply"):
            await asyncio.wait_for(renderer.call(_job(origin)), timeout=30)
        health = renderer.health().broker
        assert health is not None
        assert (health.replies, health.waiting) == (1, 0)


async def test_a_request_that_stops_waiting_counts_as_expired(
    rabbit: RabbitNode, origin: Origin
) -> None:
    taken = asyncio.Event()

    async def answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        taken.set()  # and never replies

    async with _front_with_worker(rabbit, answer) as renderer:
        call = asyncio.ensure_future(renderer.call(_job(origin)))
        await asyncio.wait_for(taken.wait(), timeout=30)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        health = renderer.health().broker
        assert health is not None
        assert (health.published, health.expired, health.waiting) == (1, 1, 0)


async def test_a_link_to_an_unreachable_broker_keeps_trying_until_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readied: list[object] = []

    async def on_ready(connection: object) -> None:
        readied.append(connection)

    with socket.socket() as unused:  # bound, not listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        link = Link(f"amqp://guest:guest@127.0.0.1:{unused.getsockname()[1]}/", "test")
        link.start(on_ready)
        await until(lambda: "broker unreachable, retrying every 1.0s" in caplog.text)
        assert not link.connected
        await link.close()
    assert (link.ready.is_set(), link.connection, readied) == (False, None, [])


async def test_a_set_up_cut_short_by_a_lost_connection_is_logged_and_the_link_is_ready(
    rabbit: RabbitNode, caplog: pytest.LogCaptureFixture
) -> None:
    """The set-up (the front's or the worker's declares) fails as a broker shutting down
    under it makes it fail: logged, and not taken as a refusal for good (the robust
    connection sets up again when it is restored)."""

    async def on_ready(connection: aio_pika.abc.AbstractRobustConnection) -> None:
        await connection.channel()
        raise aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - broker shutdown")

    link = Link(rabbit.url, "test")
    link.start(on_ready)
    await asyncio.wait_for(link.ready.wait(), timeout=30)
    assert "broker set-up interrupted" in caplog.text
    assert (link.failure, link.connected) == (None, True)
    await link.close()
