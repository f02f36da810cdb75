"""The front's side of broker mode: each miss published as a job, its reply awaited."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError

from previewer.broker import jobs
from previewer.broker.link import CONNECTION_ERRORS, Link, declare_jobs
from previewer.config.settings import BrokerConfig
from previewer.errors import Overloaded, RequestTimeout, Unavailable
from previewer.observe.recorder import Durations
from previewer.render.renderer import BrokerHealth, RendererHealth, RenderJob, RenderResult

log = logging.getLogger(__name__)

CONSUMER_POLL = 1.0  # seconds between checks of the job queue's consumer count
FIRST_CONNECTION_GRACE = 2.0  # seconds a miss waits for a front's first connection


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
        try:
            await self._open(connection)
        finally:  # after the channel, so that the first poll is at once, not a second late
            self._poller = asyncio.ensure_future(self._poll_consumers())

    async def _open(self, connection: AbstractRobustConnection) -> None:
        """The publishing channel (once: aio-pika restores it) and this connection's replies."""
        if self._channel is None:
            channel = await connection.channel(publisher_confirms=True)
            await declare_jobs(channel, self._config)
            channel.reopen_callbacks.add(self._on_reopen)
            self._channel = channel
        await self._open_replies(self._channel)

    async def _open_replies(self, channel: AbstractRobustChannel, name: str | None = None) -> None:
        """Declare and consume a reply queue of a new name, for this connection only.

        Not robust (aio-pika does not declare it again after a reconnect): a
        loss fails every request waiting on the old queue, and the old name
        must stay gone, so that a worker given one of their jobs again can see
        that nobody waits for it (`JobConsumer`'s check) and drop it. `name`:
        the current queue again, for a channel reopened on the same connection.
        """
        name = name or f"{self._config.queue}.reply.{uuid.uuid4().hex}"
        replies = await channel.declare_queue(name, exclusive=True, robust=False)
        await replies.consume(self._on_reply, no_ack=True, robust=False)
        self._reply_queue = name

    async def _on_reopen(self, channel: AbstractRobustChannel | None, /) -> None:
        """The channel alone was closed by a channel error and opened again.

        The connection is the same, so its reply queue and the requests waiting
        on it are still there; only the queue's consumer went with the old
        channel. (After a lost connection, `_fail_pending` has already let the
        queue go, and `_on_reconnect` declares a new one.)
        """
        name = self._reply_queue
        if channel is None or name is None:
            return
        try:
            await self._open_replies(channel, name)
        except CONNECTION_ERRORS as exc:
            log.warning("replies not consumed again after the channel reopened: %s", exc)
            return
        log.info("broker channel reopened; replies consumed again")

    async def _on_reconnect(self, connection: AbstractRobustConnection | None, /) -> None:
        if connection is None:
            return
        try:
            await self._open(connection)
        except CONNECTION_ERRORS as exc:  # lost again: the next reconnect tries again
            log.warning("replies not set up after the reconnect: %s", exc)

    async def wait_connected(self) -> None:
        await self._link.ready.wait()

    def _route(self) -> tuple[AbstractRobustChannel, str] | None:
        """The channel to publish a job on and the reply queue to name in it, or None
        while a job cannot be published: the connection is down, or it is up again
        and this front's new reply queue is not consumed on it yet."""
        channel, reply_queue = self._channel, self._reply_queue
        if channel is None or reply_queue is None or not self._link.connected:
            return None
        return channel, reply_queue

    @property
    def connected(self) -> bool:
        """Whether a job can be published now (what /health reports)."""
        return self._route() is not None

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self._fail_pending()
        await self._link.close()

    def health(self) -> RendererHealth:
        counters = self._counters
        broker = BrokerHealth(
            connected=self.connected,
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
        route = self._route()
        if route is None:
            self._counters.refused_unavailable += 1
            raise Unavailable(detail=self._link.failure or "no connection to the broker")
        channel, reply_queue = route
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
                except CONNECTION_ERRORS as exc:
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
