"""What broker mode relies on RabbitMQ for, asked of the broker itself.

Each test declares the job queue with the arguments fronts and workers use
(`queue_arguments`) and checks one behaviour with plain AMQP, no previewer
process: the delivery count a worker reads, the delivery limit, the dead
letters and their reasons, per-message TTL, the bounded queue's refusal, and
the passive declares of reply queues. `make test` runs them on RabbitMQ 3.10
(Debian 12) and 4.0 (Debian 13, `make test-py313`); docs/scale-out.md says what
each version gives.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from previewer.broker.link import declare_jobs
from previewer.config.settings import BrokerConfig
from rabbitmq import RabbitNode
from waiting import until

pytestmark = pytest.mark.broker
LIMIT = 2  # --broker-delivery-limit's default


@pytest.fixture
def config(rabbit: RabbitNode) -> BrokerConfig:
    return BrokerConfig(
        url=rabbit.url, queue=f"semantics-{uuid.uuid4().hex[:8]}", delivery_limit=LIMIT
    )


@pytest.fixture
async def channel(config: BrokerConfig) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(config.url)
    async with connection:
        yield await connection.channel()


async def _jobs(channel: AbstractChannel, config: BrokerConfig) -> AbstractQueue:
    return await declare_jobs(channel, config)


async def _take(config: BrokerConfig) -> tuple[aio_pika.abc.AbstractConnection, Any]:
    """A new connection that takes one job from the queue and holds it unacknowledged."""
    connection = await aio_pika.connect(config.url)
    channel = await connection.channel()
    queue = await channel.get_queue(config.queue, ensure=False)
    message = await _get(queue)
    return connection, message


async def _get(queue: AbstractQueue) -> AbstractIncomingMessage:
    got: list[AbstractIncomingMessage] = []

    async def one() -> bool:
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await until(one)  # the broker's state: polled with basic.get
    return got[0]


def _count(message: AbstractIncomingMessage) -> object:
    return (message.headers or {}).get("x-delivery-count")


async def test_a_job_returned_by_a_lost_connection_counts_as_a_delivery(
    channel: AbstractChannel, config: BrokerConfig
) -> None:
    queue = await _jobs(channel, config)
    await channel.default_exchange.publish(aio_pika.Message(b"job"), routing_key=config.queue)
    connection, first = await _take(config)
    assert _count(first) in (None, 0)  # 3.10 sends 0, 4.0 no header: the worker reads 0
    assert not first.redelivered
    await connection.close()  # a worker that dies holding the job
    again = await _get(queue)
    assert again.redelivered
    assert _count(again) == 1
    await again.ack()


async def test_a_job_returned_more_than_the_limit_is_dead_lettered_as_over_the_limit(
    channel: AbstractChannel, config: BrokerConfig
) -> None:
    await _jobs(channel, config)
    await channel.default_exchange.publish(aio_pika.Message(b"poison"), routing_key=config.queue)
    counts = []
    for _ in range(LIMIT + 1):  # each worker dies holding it
        connection, message = await _take(config)
        counts.append(_count(message) or 0)
        await connection.close()
    assert counts == [0, 1, 2]
    dead = await channel.get_queue(config.queue + ".dead", ensure=False)
    message = await _get(dead)
    assert message.body == b"poison"
    death = message.headers["x-death"][0]  # type: ignore[index]
    assert (death["reason"], death["queue"]) == ("delivery_limit", config.queue)


async def test_a_refused_job_is_dead_lettered_as_rejected(
    channel: AbstractChannel, config: BrokerConfig
) -> None:
    queue = await _jobs(channel, config)
    await channel.default_exchange.publish(aio_pika.Message(b"bad"), routing_key=config.queue)
    message = await _get(queue)
    await message.reject(requeue=False)
    dead = await channel.get_queue(config.queue + ".dead", ensure=False)
    death = (await _get(dead)).headers["x-death"][0]  # type: ignore[index]
    assert death["reason"] == "rejected"


async def test_a_job_past_its_ttl_is_dead_lettered_as_expired(
    channel: AbstractChannel, config: BrokerConfig
) -> None:
    await _jobs(channel, config)
    await channel.default_exchange.publish(
        aio_pika.Message(b"late", expiration=0.05), routing_key=config.queue
    )
    dead = await channel.get_queue(config.queue + ".dead", ensure=False)
    death = (await _get(dead)).headers["x-death"][0]  # type: ignore[index]
    assert death["reason"] == "expired"


async def test_a_full_queue_nacks_the_publish(config: BrokerConfig) -> None:
    bound = 2
    small = BrokerConfig(url=config.url, queue=config.queue, queue_length=bound)
    connection = await aio_pika.connect(small.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await _jobs(channel, small)
        accepted = 0
        with pytest.raises(aio_pika.exceptions.DeliveryError):  # noqa: PT012
            while accepted <= bound + 1:  # one at a time, each confirmed before the next
                await channel.default_exchange.publish(
                    aio_pika.Message(b"job"), routing_key=small.queue
                )
                accepted += 1
        # a quorum queue checks its bound after each enqueue: the job that
        # crosses it is accepted, the next one refused
        assert accepted in (bound, bound + 1)


async def test_other_queue_arguments_are_refused(
    channel: AbstractChannel, config: BrokerConfig
) -> None:
    await _jobs(channel, config)
    other = BrokerConfig(url=config.url, queue=config.queue, delivery_limit=LIMIT + 1)
    connection = await aio_pika.connect(config.url)
    async with connection:
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await _jobs(await connection.channel(), other)


async def test_a_passive_declare_tells_a_held_reply_queue_from_a_gone_one(
    config: BrokerConfig,
) -> None:
    front = await aio_pika.connect(config.url)
    worker = await aio_pika.connect(config.url)
    async with front, worker:
        replies = await (await front.channel()).declare_queue(exclusive=True)
        probe = await (await worker.channel()).get_underlay_channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource):
            await probe.queue_declare(replies.name, passive=True)
        probe = await (await worker.channel()).get_underlay_channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await probe.queue_declare(f"amq.gen-{uuid.uuid4().hex}", passive=True)
        await front.close()  # the front's connection ends: its reply queue goes with it
        probe = await (await worker.channel()).get_underlay_channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await asyncio.wait_for(probe.queue_declare(replies.name, passive=True), 10)
