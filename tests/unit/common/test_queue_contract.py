"""The queue port's contract, written once and run against every adapter (embedded, in-memory,
RabbitMQ). Where adapters promise different things (see the port's docstring) a test asserts what
each one promises, as its rig states it, instead of skipping."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import pytest

from earshot.common.messages import dead_letter_queue
from earshot.common.queue import MessageQueue, QueueError, open_queue
from tests.unit.common.conftest import QueueRig, close_iterator

JOBS = "jobs"

# A consumer in another process that takes one message, reports it and dies without any cleanup.
_DYING_CONSUMER = """
import asyncio, os, signal, sys
from earshot.common.queue import open_queue

async def main() -> None:
    url, name, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    queue = open_queue(url, poll_seconds=0.02, lease_seconds=lease)
    async for delivery in queue.consume(name):
        sys.stdout.write(f"{delivery.message_id} {delivery.attempt}\\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_open_queue_refuses_unknown_schemes() -> None:
    with pytest.raises(QueueError, match="kafka"):
        open_queue("kafka://broker")


async def test_publish_consume_ack(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.check()

    await queue.publish(JOBS, b'{"job_id": "j1"}', message_id="m1")
    delivery = await queue_rig.receive(queue, JOBS)
    await delivery.ack()

    assert (delivery.message_id, delivery.body, delivery.attempt) == ("m1", b'{"job_id": "j1"}', 1)
    await queue_rig.expect_nothing(queue, JOBS)


async def test_consume_waits_for_a_later_publish(queue_rig: QueueRig) -> None:
    consumer, publisher = queue_rig.open(), queue_rig.open()
    waiting = asyncio.create_task(queue_rig.receive(consumer, JOBS))
    await asyncio.sleep(0.1)

    await publisher.publish(JOBS, b"late", message_id="m1")

    assert (await waiting).body == b"late"


async def test_one_consumer_keeps_the_order_of_publishing(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    for n in range(5):
        await queue.publish(JOBS, b"x", message_id=f"m{n}")

    received = []
    for _ in range(5):
        delivery = await queue_rig.receive(queue, JOBS)
        received.append(delivery.message_id)
        await delivery.ack()

    assert received == ["m0", "m1", "m2", "m3", "m4"]


async def test_queues_are_separate(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish("other", b"x", message_id="m1")

    await queue_rig.expect_nothing(queue, JOBS, seconds=0.1)
    assert (await queue_rig.receive(queue, "other")).message_id == "m1"


async def test_a_held_message_goes_to_one_consumer_only(queue_rig: QueueRig) -> None:
    first, second = queue_rig.open(), queue_rig.open()
    await first.publish(JOBS, b"x", message_id="m1")

    held = await queue_rig.receive(first, JOBS)

    await queue_rig.expect_nothing(second, JOBS)
    await held.ack()
    await queue_rig.expect_nothing(second, JOBS, seconds=0.1)


async def test_two_consumers_share_the_work_without_duplicates(queue_rig: QueueRig) -> None:
    publisher = queue_rig.open()
    ids = [f"m{n}" for n in range(30)]
    for message_id in ids:
        await publisher.publish(JOBS, b"x", message_id=message_id)
    received: list[str] = []
    all_done = asyncio.Event()

    async def consume(queue: MessageQueue) -> None:
        deliveries = queue.consume(JOBS)
        try:
            async for delivery in deliveries:
                received.append(delivery.message_id)
                await delivery.ack()
                if len(received) >= len(ids):
                    all_done.set()
        finally:
            await close_iterator(deliveries)

    workers = [asyncio.create_task(consume(queue_rig.open())) for _ in range(2)]
    await asyncio.wait_for(all_done.wait(), 10)
    await asyncio.sleep(0.2)
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)

    assert sorted(received) == sorted(ids)
    assert Counter(received).most_common(1)[0][1] == 1


async def test_a_message_held_by_a_killed_process_is_delivered_again(
    shared_queue_rig: QueueRig,
) -> None:
    queue_rig = shared_queue_rig
    assert queue_rig.url is not None
    lease_seconds = 1.5
    queue = queue_rig.open(lease_seconds=lease_seconds)
    await queue.publish(JOBS, b"job", message_id="m1")

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DYING_CONSUMER,
        queue_rig.url,
        JOBS,
        str(lease_seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(child.communicate(), 30)
    killed_at = time.monotonic()

    assert (output, child.returncode) == (b"m1 1\n", -9)
    if queue_rig.leases:
        # The dead holder's lease still runs: nothing comes back before it lapses.
        await queue_rig.expect_nothing(queue, JOBS, seconds=0.3)
    delivery = await queue_rig.receive(queue, JOBS, timeout=5)
    assert (delivery.message_id, delivery.attempt) == ("m1", 2)
    assert time.monotonic() - killed_at < lease_seconds + 1


async def test_a_living_holder_keeps_its_message_past_the_lease(queue_rig: QueueRig) -> None:
    holder = queue_rig.open(lease_seconds=0.5)
    other = queue_rig.open(lease_seconds=0.5)
    await holder.publish(JOBS, b"long job", message_id="m1")
    held = await queue_rig.receive(holder, JOBS)

    # Four leases long: only renewal keeps it away from the other consumer.
    await queue_rig.expect_nothing(other, JOBS, seconds=2.0)
    await held.ack()

    await queue_rig.expect_nothing(other, JOBS, seconds=0.5)


async def test_retry_hides_the_message_for_the_delay(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"x", message_id="m1")
    first = await queue_rig.receive(queue, JOBS)

    retried_at = time.monotonic()
    await first.retry(delay_seconds=0.5)

    await queue_rig.expect_nothing(queue, JOBS, seconds=0.25)
    second = await queue_rig.receive(queue, JOBS)
    assert time.monotonic() - retried_at >= 0.45
    assert (second.message_id, second.attempt) == ("m1", 2)


async def test_a_message_delivered_too_often_is_dead_lettered(queue_rig: QueueRig) -> None:
    queue = queue_rig.open(max_deliveries=2)
    await queue.publish(JOBS, b"poison", message_id="m1")
    for attempt in (1, 2):
        delivery = await queue_rig.receive(queue, JOBS)
        assert delivery.attempt == attempt
        await delivery.retry(delay_seconds=0)

    await queue_rig.expect_nothing(queue, JOBS)

    [(message_id, body, reason)] = await queue.dead_letters(JOBS)
    assert (message_id, body) == ("m1", b"poison")
    assert "2" in reason


async def test_dead_letter_then_redrive(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"bad", message_id="m1")
    delivery = await queue_rig.receive(queue, JOBS)

    await delivery.dead_letter(reason="unreadable input")

    await queue_rig.expect_nothing(queue, JOBS, seconds=0.1)
    assert await queue.dead_letters(JOBS) == [("m1", b"bad", "unreadable input")]
    assert await queue.redrive(JOBS, "m1") is True
    again = await queue_rig.receive(queue, JOBS)
    assert (again.message_id, again.body, again.attempt) == ("m1", b"bad", 1)
    assert await queue.dead_letters(JOBS) == []
    assert await queue.redrive(JOBS, "m1") is False


async def test_dead_letters_form_a_queue_of_their_own(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"bad", message_id="m1")
    await (await queue_rig.receive(queue, JOBS)).dead_letter(reason="no")

    dead = await queue_rig.receive(queue, dead_letter_queue(JOBS))

    assert (dead.message_id, dead.body) == ("m1", b"bad")


async def test_redrive_of_an_unknown_message_is_false(queue_rig: QueueRig) -> None:
    assert await queue_rig.open().redrive(JOBS, "nope") is False


async def test_publishing_the_same_message_id_twice(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()

    await queue.publish(JOBS, b"first", message_id="m1")
    await queue.publish(JOBS, b"again", message_id="m1")

    delivery = await queue_rig.receive(queue, JOBS)
    assert (delivery.message_id, delivery.body) == ("m1", b"first")
    await delivery.ack()
    if not queue_rig.deduplicates:
        # Both copies arrive, under the same id: consumers must be idempotent.
        again = await queue_rig.receive(queue, JOBS)
        assert (again.message_id, again.body) == ("m1", b"again")
        await again.ack()
    await queue_rig.expect_nothing(queue, JOBS)


async def test_messages_survive_reopening(queue_rig: QueueRig) -> None:
    before = queue_rig.open()
    await before.publish(JOBS, b"a", message_id="m1")
    await before.publish(JOBS, b"b", message_id="m2")
    await (await queue_rig.receive(before, JOBS)).retry(delay_seconds=0)
    await before.close()

    after = queue_rig.open()

    first, second = await queue_rig.receive(after, JOBS), await queue_rig.receive(after, JOBS)
    assert sorted((d.message_id, d.attempt) for d in (first, second)) == [("m1", 2), ("m2", 1)]


async def test_close_hands_held_deliveries_back_at_once(queue_rig: QueueRig) -> None:
    stopping, other = queue_rig.open(lease_seconds=60), queue_rig.open(lease_seconds=60)
    await stopping.publish(JOBS, b"x", message_id="m1")
    await queue_rig.receive(stopping, JOBS)
    await queue_rig.expect_nothing(other, JOBS, seconds=0.1)

    await stopping.close()

    delivery = await queue_rig.receive(other, JOBS, timeout=1)
    assert (delivery.message_id, delivery.attempt) == ("m1", 2)


async def test_settling_twice_or_after_close_is_harmless(queue_rig: QueueRig) -> None:
    queue, other = queue_rig.open(), queue_rig.open()
    await queue.publish(JOBS, b"x", message_id="m1")
    await queue.publish(JOBS, b"y", message_id="m2")
    acked = await queue_rig.receive(queue, JOBS)
    await acked.ack()
    await acked.ack()
    await acked.retry(delay_seconds=0)
    await acked.dead_letter(reason="late")
    held = await queue_rig.receive(queue, JOBS)

    await queue.close()
    await queue.close()
    await held.ack()

    assert (await queue_rig.receive(other, JOBS)).message_id == "m2"
    assert await other.dead_letters(JOBS) == []
    await queue_rig.expect_nothing(other, JOBS, seconds=0.1)


async def test_a_closed_queue_refuses_to_publish(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.close()

    with pytest.raises(QueueError):
        await queue.publish(JOBS, b"x", message_id="m1")
    with pytest.raises(QueueError):
        await queue.check()


async def test_a_consumer_cancelled_mid_claim_loses_no_message(queue_rig: QueueRig) -> None:
    cancelled, other = queue_rig.open(lease_seconds=60), queue_rig.open(lease_seconds=60)
    await cancelled.publish(JOBS, b"x", message_id="m1")
    deliveries = cancelled.consume(JOBS)
    claim = asyncio.ensure_future(anext(deliveries))
    await asyncio.sleep(0)

    claim.cancel()
    await asyncio.gather(claim, return_exceptions=True)
    await close_iterator(deliveries)

    if not claim.cancelled():
        # The claim finished before the cancellation landed: the caller holds the message.
        assert claim.result().message_id == "m1"
        return
    # Well within the 60 s lease: the claim was handed back, not left to expire.
    delivery = await queue_rig.receive(other, JOBS, timeout=2)
    assert delivery.message_id == "m1"
