"""The RabbitMQ adapter beyond the shared contract: topology, confirms, limits, prefetch, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from earshot.common.messages import dead_letter_queue
from earshot.common.queue import QueueError
from earshot.common.queue.rabbitmq import RabbitMQQueue
from earshot.common.queue.rabbitmq_wire import build_message
from tests.rabbitmq import delete_queues, rabbitmq_url, rabbitmqctl  # noqa: F401 - a fixture
from tests.unit.common.conftest import QueueRig

pytestmark = pytest.mark.integration

JOBS = "jobs"
Opener = Callable[..., RabbitMQQueue]


@pytest.fixture
async def connect(rabbitmq_url: str) -> AsyncIterator[Opener]:  # noqa: F811
    """Opens `RabbitMQQueue`s on the session's virtual host; closes them and their queues after."""
    opened: list[RabbitMQQueue] = []

    def open_(*, query: str = "", **kwargs: Any) -> RabbitMQQueue:
        queue = RabbitMQQueue(rabbitmq_url + query, **kwargs)
        opened.append(queue)
        return queue

    yield open_
    for queue in opened:
        await queue.close()
    await delete_queues(rabbitmq_url, frozenset().union(*(q.declared_queues for q in opened)))


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def listed(what: str, url: str, *columns: str) -> dict[str, dict[str, Any]]:
    """`rabbitmqctl list_<what>` of the test host, by name."""
    out = rabbitmqctl(f"list_{what}", "-p", vhost_of(url), *columns, "--formatter", "json")
    return {row["name"]: row for row in json.loads(out)}


async def message_count(url: str, name: str) -> int:
    """Messages in a queue now (rabbitmqctl's figures lag by seconds)."""
    async with await aio_pika.connect(url) as raw:
        queue = await (await raw.channel()).declare_queue(name, passive=True)
        count = queue.declaration_result.message_count
    return count or 0


async def test_topology_is_declared_on_first_use(connect: Opener, rabbitmq_url: str) -> None:  # noqa: F811
    queue = connect(max_deliveries=3)
    await queue.publish(JOBS, b"x", message_id="m1")
    await (await QueueRig.receive(queue, JOBS)).retry(delay_seconds=0.9)

    queues = listed("queues", rabbitmq_url, "name", "type", "durable", "arguments")
    exchanges = listed("exchanges", rabbitmq_url, "name", "type", "durable")

    arguments = {name: {a[0]: a[2] for a in row["arguments"]} for name, row in queues.items()}
    assert {name: (row["type"], row["durable"]) for name, row in queues.items()} == {
        JOBS: ("quorum", True),
        "jobs.dead": ("quorum", True),
        "earshot.retry.1000": ("quorum", True),
    }
    assert arguments[JOBS] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "earshot.dlx",
        "x-dead-letter-routing-key": "jobs.dead",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert arguments["earshot.retry.1000"]["x-message-ttl"] == 1000
    assert arguments["earshot.retry.1000"]["x-dead-letter-exchange"] == "earshot"
    # Other tests' retry exchanges may remain in the session's host: exchanges are generic.
    assert {n: (r["type"], r["durable"]) for n, r in exchanges.items()}.items() >= {
        "earshot": ("direct", True),
        "earshot.dlx": ("direct", True),
        "earshot.retry.1000": ("fanout", True),
    }.items()


async def test_an_unroutable_message_is_never_reported_as_success(
    connect: Opener,
    rabbitmq_url: str,  # noqa: F811
) -> None:
    queue = connect()
    await queue.publish(JOBS, b"first", message_id="m1")
    await delete_queues(rabbitmq_url, [JOBS])  # behind the adapter's back: it will not route

    with pytest.raises(QueueError, match="not routed"):
        await queue._connection.send(
            build_message(b"lost", message_id="m2", attempts=0),
            queue=JOBS,
            target="queue",
            patient=False,
        )
    await queue.publish(JOBS, b"again", message_id="m3")  # declared again, then routed

    delivery = await QueueRig.receive(queue, JOBS)
    assert (delivery.message_id, delivery.body) == ("m3", b"again")


async def test_a_message_the_broker_refuses_raises(connect: Opener, rabbitmq_url: str) -> None:  # noqa: F811
    queue = connect()
    await queue.publish(JOBS, b"x", message_id="m0")
    vhost = vhost_of(rabbitmq_url)
    rabbitmqctl(
        "set_policy", "-p", vhost, "--apply-to", "queues", "full", f"^{JOBS}$", '{"max-length":1}'
    )
    try:
        stored, refused = 1, 0
        for n in range(1, 6):
            try:
                await queue.publish(JOBS, b"x", message_id=f"m{n}")
                stored += 1
            except QueueError as exc:
                assert "refused" in str(exc)
                refused += 1
        counted = await message_count(rabbitmq_url, JOBS)
    finally:
        rabbitmqctl("clear_policy", "-p", vhost, "full")

    # Quorum queues apply the limit approximately; what counts is that no refusal passed as stored.
    assert refused >= 3
    assert counted == stored


async def test_returns_count_as_deliveries_up_to_the_limit(connect: Opener) -> None:
    await connect().publish(JOBS, b"poison", message_id="m1")

    for attempt in (1, 2):
        holder = connect(max_deliveries=2)
        assert (await QueueRig.receive(holder, JOBS)).attempt == attempt
        await holder.close()  # like a crash: the broker takes it back

    last = connect(max_deliveries=2)
    await QueueRig.expect_nothing(last, JOBS, seconds=0.5)
    assert await last.dead_letters(JOBS) == [
        ("m1", b"poison", "delivered 2 times without an ack (limit 2)")
    ]


async def test_the_brokers_delivery_limit_is_the_backstop(
    connect: Opener,
    rabbitmq_url: str,  # noqa: F811
) -> None:
    queue = connect(max_deliveries=2)
    await queue.publish(JOBS, b"poison", message_id="m1")
    # A client that returns the message every time, never checking any limit.
    async with await aio_pika.connect(rabbitmq_url) as raw:
        source = await (await raw.channel()).get_queue(JOBS)
        for _ in range(3):
            message = await source.get(timeout=5)
            await message.nack(requeue=True)

    [(message_id, _, reason)] = await queue.dead_letters(JOBS)
    assert (message_id, reason) == ("m1", "returned more often than the queue's delivery limit")
    assert await queue.redrive(JOBS, "m1") is True
    assert (await QueueRig.receive(queue, JOBS)).attempt == 1


async def test_attempt_counts_retries_and_returns(connect: Opener) -> None:
    first = connect()
    await first.publish(JOBS, b"x", message_id="m1")
    retried_at = time.monotonic()
    await (await QueueRig.receive(first, JOBS)).retry(delay_seconds=1.2)

    second = await QueueRig.receive(first, JOBS, timeout=5)
    waited = time.monotonic() - retried_at
    await first.close()
    third = await QueueRig.receive(connect(), JOBS)

    # Its own expiration (1.2 s) within the 2 s retry queue.
    assert 1.2 <= waited < 2.0
    assert (second.attempt, third.attempt) == (2, 3)


async def test_prefetch_bounds_what_one_consumer_holds(connect: Opener) -> None:
    busy, idle = connect(prefetch=2), connect()
    for n in range(4):
        await busy.publish(JOBS, b"x", message_id=f"m{n}")
    deliveries = busy.consume(JOBS)
    held = [await anext(deliveries), await anext(deliveries)]

    # The broker pushes no third message to a consumer holding two.
    third = await QueueRig.receive(idle, JOBS)
    await held[0].ack()
    fourth = await asyncio.wait_for(anext(deliveries), 3)
    await deliveries.aclose()  # type: ignore[attr-defined]

    assert [d.message_id for d in (*held, third, fourth)] == ["m0", "m1", "m2", "m3"]


async def test_a_long_held_delivery_lives_through_many_heartbeats(connect: Opener) -> None:
    holder, other = connect(query="?heartbeat=1"), connect()
    await holder.publish(JOBS, b"long job", message_id="m1")
    held = await QueueRig.receive(holder, JOBS)

    # Four heartbeat intervals while the event loop stays free, as during an ffmpeg subprocess.
    await QueueRig.expect_nothing(other, JOBS, seconds=4)
    await held.ack()

    await holder.close()
    await QueueRig.expect_nothing(other, JOBS, seconds=0.3)


async def test_an_unreachable_broker_raises_queue_error_soon() -> None:
    queue = RabbitMQQueue("amqp://guest:guest@127.0.0.1:1/", publish_timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(QueueError, match="unreachable"):
            await queue.check()
        with pytest.raises(QueueError, match="publishing"):
            await queue.publish(JOBS, b"x", message_id="m1")
        with pytest.raises(QueueError, match="unreachable"):
            await anext(queue.consume(JOBS))
    finally:
        await queue.close()
    assert time.monotonic() - started < 5


async def test_a_queue_declared_with_another_limit_is_used_as_it_is(connect: Opener) -> None:
    await connect(max_deliveries=3).publish(JOBS, b"a", message_id="m1")

    other = connect(max_deliveries=5)
    await other.publish(JOBS, b"b", message_id="m2")

    received = [await QueueRig.receive(other, JOBS) for _ in range(2)]
    assert [d.message_id for d in received] == ["m1", "m2"]


async def test_dead_letters_of_another_queue_are_apart(connect: Opener) -> None:
    queue = connect()
    await queue.publish(JOBS, b"x", message_id="m1")
    await (await QueueRig.receive(queue, JOBS)).dead_letter(reason="bad")

    assert await queue.dead_letters("other") == []
    assert await queue.dead_letters(JOBS) == [("m1", b"x", "bad")]
    assert dead_letter_queue(JOBS) in queue.declared_queues
