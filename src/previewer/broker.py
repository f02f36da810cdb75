"""RabbitMQ: the job queue between fronts and render workers.

The only module that imports the AMQP client (aio-pika). It owns the
connection (started in the background, reconnected by itself), the queue
topology, the front's side of the RPC (`BrokerRenderer`) and the worker's
consumer (`JobConsumer`); what a worker does with a job is worker.py's.

Topology, declared identically by fronts and workers:

    previewer.render        quorum queue of jobs: x-delivery-limit (a job that
                            kills its worker every time is dead-lettered, not
                            redelivered forever), x-max-length with
                            reject-publish (a full queue refuses at once, and
                            the front answers 503), dead-lettering to
    previewer.render.dead   jobs that were malformed, over the delivery limit or
                            expired (bounded like the job queue, oldest dropped)
    previewer.render.reply.<id>
                            a front's exclusive reply queue, one for each
                            connection: a new name after every reconnect, so
                            a job published before a connection was lost
                            names a queue that no longer exists

A job expires in the queue when its request's deadline passes (per-message
TTL), so a worker never renders for a client that has given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, DeliveryError

from previewer import jobs
from previewer.config import BrokerConfig
from previewer.errors import Overloaded, RequestTimeout, Unavailable
from previewer.metrics import Durations
from previewer.renderer import BrokerHealth, RendererHealth, RenderJob, RenderResult

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0  # seconds between connection attempts
CONSUMER_POLL = 1.0  # seconds between checks of the job queue's consumer count
FIRST_CONNECTION_GRACE = 2.0  # seconds a miss waits for a front's first connection
CLOSE_TIMEOUT = 5.0  # seconds a clean close may take before the connection is dropped
# ChannelInvalidStateError (a RuntimeError): the channel closed under a publish,
# ack or cancel while the connection was being lost, before it counted as lost.
_CONNECTION_ERRORS = (
    AMQPError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


def queue_arguments(config: BrokerConfig) -> dict[str, Any]:
    """The job queue's arguments; fronts and workers must declare the same."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": config.delivery_limit,
        "x-max-length": config.queue_length,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(config),
    }


def dead_letter_queue(config: BrokerConfig) -> str:
    return config.queue + ".dead"


class Link:
    """One robust connection, opened in the background and kept open.

    `start` returns at once; the first connection is retried every
    RECONNECT_INTERVAL until it succeeds, and aio-pika restores the
    connection, channels, queues and consumers after any later loss.
    `on_ready` runs once the first connection is up.
    """

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self.connection: AbstractRobustConnection | None = None
        self.ready = asyncio.Event()  # set once on_ready has run
        self._task: asyncio.Task[None] | None = None
        self._on_ready: Callable[[AbstractRobustConnection], Awaitable[None]] | None = None
        self._closing = False
        self.failure: str | None = None  # why the set-up was refused, for good

    def start(self, on_ready: Callable[[AbstractRobustConnection], Awaitable[None]]) -> None:
        self._on_ready = on_ready
        self._task = asyncio.ensure_future(self._connect())

    @property
    def connected(self) -> bool:
        connection = self.connection
        return (
            self.ready.is_set()
            and self.failure is None
            and connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
        )

    async def _connect(self) -> None:
        assert self._on_ready is not None
        attempt = 0
        while True:
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    reconnect_interval=RECONNECT_INTERVAL,
                    client_properties={"connection_name": self._name},
                )
                break
            except _CONNECTION_ERRORS as exc:
                if attempt == 0:
                    log.warning(
                        "broker unreachable, retrying every %ss: %s", RECONNECT_INTERVAL, exc
                    )
                attempt += 1
                await asyncio.sleep(RECONNECT_INTERVAL)
        self.connection = connection
        connection.reconnect_callbacks.add(lambda *_: log.info("broker connection restored"))
        connection.close_callbacks.add(self._closed)
        try:
            await self._on_ready(connection)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            self.failure = f"the broker refused the queue set-up: {exc}"
            log.error(
                "%s; fronts and workers must use the same --broker-queue-length and "
                "--broker-delivery-limit as the queue was declared with",
                self.failure,
            )
        except _CONNECTION_ERRORS as exc:  # lost again while declaring: robust will restore
            log.warning("broker set-up interrupted: %s", exc)
        self.ready.set()
        log.info("connected to the broker (%s)", self._name)

    def _closed(self, *_: object) -> None:
        if not self._closing:
            log.warning("broker connection lost; reconnecting")

    async def close(self) -> None:
        """Close the connection (and stop connecting); bounded by CLOSE_TIMEOUT."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        connection = self.connection
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*_CONNECTION_ERRORS, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await connection.close()


async def declare_jobs(channel: AbstractChannel, config: BrokerConfig) -> AbstractQueue:
    # bounded as well, oldest dropped first: expired jobs are dead-lettered too
    dead: dict[str, Any] = {"x-queue-type": "quorum", "x-max-length": config.queue_length}
    await channel.declare_queue(dead_letter_queue(config), durable=True, arguments=dead)
    return await channel.declare_queue(
        config.queue, durable=True, arguments=queue_arguments(config)
    )


@dataclass
class _FrontCounters:
    published: int = 0
    replies: int = 0
    unexpected_replies: int = 0
    refused_full: int = 0
    refused_unavailable: int = 0
    expired: int = 0


class BrokerRenderer:
    """The render stage of a front in broker mode: publishes each miss, waits for its reply.

    Implements `renderer.Renderer`. A job's deadline travels as its message's
    TTL, so a job whose request has given up expires in the queue. Without a
    deadline a job gets `default_timeout` seconds.
    """

    def __init__(self, config: BrokerConfig, default_timeout: float) -> None:
        self._config = config
        self._default_timeout = default_timeout
        self._link = Link(config.url, "previewer front")
        # the reply queue of the current connection; None between a loss and its replacement
        self._reply_queue: str | None = None
        self._channel: AbstractRobustChannel | None = None
        self._pending: dict[str, asyncio.Future[jobs.Reply]] = {}
        self._consumers: int | None = None
        self._depth: int | None = None
        # publish-to-reply times, kept on the event loop, read by metrics at scrape time
        self.job_durations = Durations()
        self._poller: asyncio.Task[None] | None = None
        self._counters = _FrontCounters()

    async def load(self) -> None:
        """Start connecting in the background; misses answer 503 until connected."""
        self._link.start(self._set_up)

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        connection.close_callbacks.add(self._fail_pending)
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._poller = asyncio.ensure_future(self._poll_consumers())
        await self._open(connection)

    async def _open(self, connection: AbstractRobustConnection) -> None:
        """The publishing channel (once: aio-pika restores it) and this connection's replies."""
        if self._channel is None:
            channel = await connection.channel(publisher_confirms=True)
            await declare_jobs(channel, self._config)
            self._channel = channel
        await self._open_replies(self._channel)

    async def _open_replies(self, channel: AbstractRobustChannel) -> None:
        """Declare and consume a reply queue of a new name, for this connection only.

        Not robust (aio-pika does not declare it again after a reconnect): a
        loss fails every request waiting on the old queue, and the old name
        must stay gone, so that a worker given one of their jobs again can see
        that nobody waits for it (`JobConsumer`'s check) and drop it.
        """
        name = f"{self._config.queue}.reply.{uuid.uuid4().hex}"
        replies = await channel.declare_queue(name, exclusive=True, robust=False)
        await replies.consume(self._on_reply, no_ack=True, robust=False)
        self._reply_queue = name

    async def _on_reconnect(self, connection: AbstractRobustConnection | None, /) -> None:
        if connection is None:
            return
        try:
            await self._open(connection)
        except _CONNECTION_ERRORS as exc:  # lost again: the next reconnect tries again
            log.warning("replies not set up after the reconnect: %s", exc)

    async def wait_connected(self) -> None:
        await self._link.ready.wait()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self._fail_pending()
        await self._link.close()

    def health(self) -> RendererHealth:
        counters = self._counters
        broker = BrokerHealth(
            connected=self._link.connected,
            consumers=self._consumers,
            queue_depth=self._depth,
            expired=self._counters.expired,
            waiting=len(self._pending),
            published=counters.published,
            replies=counters.replies,
            unexpected_replies=counters.unexpected_replies,
            refused_full=counters.refused_full,
            refused_unavailable=counters.refused_unavailable,
        )
        return RendererHealth(
            renders_running=len(self._pending),
            renders_waiting=0,
            fetches=0,
            source_hits=0,
            renders=counters.published,
            abandoned=0,
            source_cache=None,
            broker=broker,
        )

    async def render(self, job: RenderJob, abandoned: threading.Event) -> RenderResult:
        deadline = job.deadline or time.time() + self._default_timeout
        reply = await self.call(
            jobs.Job(job.options, job.headers, job.client_address, deadline, job.request_id)
        )
        return RenderResult(reply.body, reply.content_type, reply.shareable, reply.complete)

    async def call(self, job: jobs.Job) -> jobs.Reply:
        """Publish `job` and wait for its reply, until the job's deadline at most.

        Raises Unavailable (503) at once with no broker connection or no
        worker, or when the connection is lost while the job waits;
        Overloaded (503) when the queue is at its bound; RequestTimeout (504)
        at the deadline, whatever the job waits for (a confirm or a reply that
        a broker restart lost); and the worker's own error when it sends one.
        The call always ends by the deadline: the flight it belongs to, which
        later requests for the same preview join, never outlives it.
        """
        if not self._link.ready.is_set():  # just started: the first connection is on its way
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_CONNECTION_GRACE):
                    await self._link.ready.wait()
        channel, reply_queue = self._channel, self._reply_queue
        if channel is None or reply_queue is None or not self._link.connected:
            self._counters.refused_unavailable += 1
            raise Unavailable(detail=self._link.failure or "no connection to the broker")
        if self._consumers == 0:
            self._counters.refused_unavailable += 1
            raise Unavailable(
                detail=f"no worker consumes {self._config.queue}", reason="no_workers"
            )
        correlation = uuid.uuid4().hex
        reply: asyncio.Future[jobs.Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = reply
        try:
            message = aio_pika.Message(
                jobs.encode_job(job),
                content_type="application/json",
                correlation_id=correlation,
                reply_to=reply_queue,
                expiration=max(0.001, job.deadline - time.time()),
            )
            async with asyncio.timeout(max(0.001, job.deadline - time.time())):
                started = time.perf_counter()
                try:
                    await channel.default_exchange.publish(message, routing_key=self._config.queue)
                except DeliveryError as exc:
                    self._counters.refused_full += 1
                    raise Overloaded(
                        detail=f"job queue full: {exc}", reason="broker_full"
                    ) from None
                except _CONNECTION_ERRORS as exc:
                    self._counters.refused_unavailable += 1
                    raise Unavailable(detail=f"publishing failed: {exc}") from None
                self._counters.published += 1
                answer = await reply
                self.job_durations.observe(time.perf_counter() - started)
                return answer
        except TimeoutError:
            self._counters.expired += 1
            raise RequestTimeout(detail="no reply from a worker by the deadline") from None
        except asyncio.CancelledError:  # the request gave up first (its own deadline, or left)
            self._counters.expired += 1
            raise
        finally:
            self._pending.pop(correlation, None)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        waiter = self._pending.get(message.correlation_id or "")
        if waiter is None or waiter.done():
            self._counters.unexpected_replies += 1
            log.debug("dropped a reply nobody waits for (%s)", message.correlation_id)
            return
        self._counters.replies += 1
        try:
            waiter.set_result(jobs.decode_reply(message.body, message.headers))
        except jobs.MalformedMessage as exc:
            waiter.set_exception(Unavailable(detail=f"malformed reply: {exc}"))
        except Exception as exc:  # the worker's error, raised to the request
            waiter.set_exception(exc)

    def _fail_pending(self, *_: object) -> None:
        """The connection is gone, and every reply on it with it: fail the waiters now."""
        self._reply_queue = None
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(Unavailable(detail="broker connection lost"))

    async def _poll_consumers(self) -> None:
        """Keep the job queue's consumer count, so that no worker is a 503 at once.

        A passive declare on the AMQP channel itself: aio-pika's robust
        channel answers a repeated declare from what it remembers.
        """
        while True:
            channel = self._channel
            if channel is not None and self._link.connected:
                try:
                    underlay = await channel.get_underlay_channel()
                    declared = await underlay.queue_declare(self._config.queue, passive=True)
                    self._consumers = declared.consumer_count
                    self._depth = declared.message_count
                except Exception as exc:  # the count is advice: never let the poll die
                    log.debug("consumer count unknown: %s", exc)
                    self._consumers = self._depth = None
            await asyncio.sleep(CONSUMER_POLL)


@dataclass(frozen=True)
class Delivery:
    """One job as the worker sees it, without the AMQP client's types."""

    body: bytes
    deliveries: int  # how often the broker has delivered it before (0: first time)
    # whether its front still waits for it: its reply queue exists (an exclusive
    # queue goes with its front's connection, and a front never declares it again)
    awaited: Callable[[], Awaitable[bool]]
    reply: Callable[[bytes, dict[str, Any]], Awaitable[None]]
    ack: Callable[[], Awaitable[None]]
    dead_letter: Callable[[], Awaitable[None]]


JobHandler = Callable[[Delivery], Awaitable[None]]


class JobConsumer:
    """The worker's side: consumes jobs with a bounded prefetch, hands each to `handler`."""

    def __init__(self, config: BrokerConfig, prefetch: int, handler: JobHandler) -> None:
        self._config = config
        self._prefetch = prefetch
        self._handler = handler
        self._link = Link(config.url, "previewer worker")
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._channel: AbstractChannel | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def failure(self) -> str | None:
        """Why the broker refused this worker's queue set-up (None: it did not)."""
        return self._link.failure

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        self._link.start(self._set_up)

    async def wait_ready(self) -> None:
        await self._link.ready.wait()

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        # No publisher confirms: a reply goes out on the job's own channel just
        # before the job's ack, and the broker handles a channel's frames in
        # order, so it has routed the reply before it takes the ack. A reply
        # to a front that has gone (its reply queue with it) is dropped by the
        # broker, as it should be: nobody waits for it.
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await declare_jobs(channel, self._config)
        self._channel = channel
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._handler(self._delivery(message))
        finally:
            self._in_flight.discard(task)

    def _delivery(self, message: AbstractIncomingMessage) -> Delivery:
        headers = message.headers or {}
        count = headers.get("x-delivery-count", 0)
        deliveries = count if isinstance(count, int) else int(bool(message.redelivered))

        async def awaited() -> bool:
            return await self._reply_queue_exists(message.reply_to)

        async def reply(body: bytes, reply_headers: dict[str, Any]) -> None:
            channel = self._channel
            if channel is None or not message.reply_to:
                return
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body, headers=reply_headers, correlation_id=message.correlation_id
                ),
                routing_key=message.reply_to,
                mandatory=False,
            )

        async def ack() -> None:
            await message.ack()

        async def dead_letter() -> None:
            await message.reject(requeue=False)

        return Delivery(message.body, deliveries, awaited, reply, ack, dead_letter)

    async def _reply_queue_exists(self, name: str | None) -> bool:
        """Whether the queue `name` exists; True when the broker cannot say.

        A passive declare, on a channel of its own since a missing queue
        closes the channel that asked. A queue another connection holds
        exclusively answers RESOURCE_LOCKED: it exists.
        """
        channel = self._channel
        if not name:
            return False
        if channel is None:
            return True
        try:
            underlay = await channel.get_underlay_channel()
            probe = await underlay.connection.channel(publisher_confirms=False)
        except _CONNECTION_ERRORS:
            return True
        try:
            await probe.queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        except _CONNECTION_ERRORS:  # ChannelLockedResource among them
            return True
        finally:
            if not probe.is_closed:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    await probe.close()
        return True

    async def stop(self, grace: float) -> None:
        """Stop taking jobs, let those in flight finish (up to `grace` seconds), then close.

        Jobs received but not acknowledged when the connection closes go back
        to the queue for another worker. Calling it again does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        queue, tag = self._queue, self._tag
        if queue is not None and tag is not None and self._link.connected:
            with contextlib.suppress(*_CONNECTION_ERRORS, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await queue.cancel(tag)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        await self._link.close()
