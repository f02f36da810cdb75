"""The connection to RabbitMQ, kept open in the background, and the job queue's topology."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPError

from previewer.config.settings import BrokerConfig

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0  # seconds between connection attempts
CLOSE_TIMEOUT = 5.0  # seconds a clean close may take before the connection is dropped
# ChannelInvalidStateError (a RuntimeError): the channel closed under a publish,
# ack or cancel while the connection was being lost, before it counted as lost.
CONNECTION_ERRORS = (
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
            except CONNECTION_ERRORS as exc:
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
        except CONNECTION_ERRORS as exc:  # lost again while declaring: robust will restore
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
            with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await connection.close()


async def declare_jobs(channel: AbstractChannel, config: BrokerConfig) -> AbstractQueue:
    # bounded as well, oldest dropped first: expired jobs are dead-lettered too
    dead: dict[str, Any] = {"x-queue-type": "quorum", "x-max-length": config.queue_length}
    await channel.declare_queue(dead_letter_queue(config), durable=True, arguments=dead)
    return await channel.declare_queue(
        config.queue, durable=True, arguments=queue_arguments(config)
    )
