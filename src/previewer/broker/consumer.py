"""The worker's side of broker mode: jobs consumed with a bounded prefetch, as `Delivery`s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from previewer.broker.link import CLOSE_TIMEOUT, CONNECTION_ERRORS, Link, declare_jobs
from previewer.config.settings import BrokerConfig

log = logging.getLogger(__name__)


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
        except CONNECTION_ERRORS:
            return True
        try:
            await probe.queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        except aiormq.exceptions.ChannelLockedResource:  # its front's connection holds it
            return True
        except CONNECTION_ERRORS:  # the broker cannot say: render, as without the check
            return True
        finally:
            if not probe.is_closed:
                with contextlib.suppress(*CONNECTION_ERRORS):
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
            with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await queue.cancel(tag)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        await self._link.close()
