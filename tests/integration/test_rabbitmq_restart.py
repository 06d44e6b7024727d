"""RabbitMQ restarted under a running publisher and consumer: both carry on, nothing is lost.

Restarts this machine's broker (`rabbitmqctl stop_app` / `start_app`): other clients of it see the
same outage, which is what they must survive too.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from earshot.common.queue import Delivery, open_queue
from earshot.common.queue.rabbitmq import RabbitMQQueue
from tests.rabbitmq import delete_queues, rabbitmq_url, restart_broker  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration

JOBS = "jobs"
MESSAGES = 60


@pytest.fixture
async def queues(rabbitmq_url: str) -> AsyncIterator[tuple[RabbitMQQueue, RabbitMQQueue]]:  # noqa: F811
    """A publishing and a consuming connection, as two processes would have."""
    publisher = open_queue(rabbitmq_url)
    consumer = open_queue(rabbitmq_url)
    assert isinstance(publisher, RabbitMQQueue) and isinstance(consumer, RabbitMQQueue)
    yield publisher, consumer
    await publisher.close()
    await consumer.close()
    await delete_queues(rabbitmq_url, publisher.declared_queues | consumer.declared_queues)


async def test_publish_and_consume_resume_after_a_broker_restart_with_nothing_lost(
    queues: tuple[RabbitMQQueue, RabbitMQQueue], record_property: pytest.RecordProperty
) -> None:
    publisher, consumer = queues
    ids = [f"m{n:03}" for n in range(MESSAGES)]
    acked: list[str] = []
    held_across: list[Delivery] = []
    everything_acked = asyncio.Event()

    async def consume() -> None:
        async for delivery in consumer.consume(JOBS):
            if delivery.message_id == "m005" and not held_across:
                # A long job in progress while the broker goes away: its ack comes too late.
                held_across.append(delivery)
                continue
            await delivery.ack()
            acked.append(delivery.message_id)
            if set(acked) == set(ids):
                everything_acked.set()

    async def publish() -> None:
        for message_id in ids:
            await publisher.publish(JOBS, message_id.encode(), message_id=message_id)
            await asyncio.sleep(0.05)

    # Given a consumer at work and a publisher halfway through
    consuming = asyncio.create_task(consume())
    publishing = asyncio.create_task(publish())
    while len(acked) < 15:
        await asyncio.sleep(0.02)

    # When the broker restarts
    down_seconds = await asyncio.to_thread(restart_broker)
    restarted_at = time.monotonic()
    await asyncio.wait_for(publishing, 60)
    await held_across[0].ack()  # on a channel that no longer exists: dropped, redelivered
    await asyncio.wait_for(everything_acked.wait(), 60)
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)

    # Then every message arrived, the held one again, with no process restarted
    assert consuming.cancelled(), "the consumer's iterator must survive the restart"
    counts = Counter(acked)
    assert set(counts) == set(ids)
    duplicates = sum(counts.values()) - len(ids)
    assert duplicates <= 5, counts.most_common(5)
    record_property("broker_down_seconds", round(down_seconds, 1))
    record_property("all_acked_after_restart_seconds", round(time.monotonic() - restarted_at, 1))
    record_property("duplicates", duplicates)
