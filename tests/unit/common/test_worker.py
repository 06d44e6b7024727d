"""The consumer loop's policy, run against every queue adapter."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from earshot.common.queue import Delivery, MessageQueue, QueueError
from earshot.common.queue.memory import MemoryDelivery, MemoryQueue
from earshot.common.worker import (
    Heartbeat,
    PermanentError,
    RetryPolicy,
    TransientError,
    run_consumer,
)
from tests.unit.common.conftest import QueueRig

JOBS = "jobs"
Handler = Callable[[Delivery], Awaitable[None]]


@asynccontextmanager
async def running(
    queue: MessageQueue, handler: Handler, **options: Any
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[None]]]:
    """A worker on `JOBS` for the block; stopped (and awaited) at the end if still running."""
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.08,
        "grace_seconds": 5.0,
    }
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(queue, JOBS, handler, stop=stop, **(settings | options))
    )
    try:
        yield stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def assert_settled(queue_rig: QueueRig, queue: MessageQueue) -> None:
    """Nothing is left: closing the worker's connection hands back whatever it still held."""
    await queue.close()
    await queue_rig.expect_nothing(queue_rig.open(), JOBS)


class GiveUps:
    """An `on_give_up` that records its calls and signals the first one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.called = asyncio.Event()

    async def __call__(self, delivery: Delivery, reason: str) -> None:
        self.calls.append((delivery.message_id, delivery.attempt, reason))
        self.called.set()


async def test_a_handled_message_is_acked(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    handled = asyncio.Event()
    bodies: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        bodies.append(delivery.body)
        handled.set()

    async with running(queue, handler):
        await asyncio.wait_for(handled.wait(), 5)

    assert bodies == [b"job"]
    await assert_settled(queue_rig, queue)


async def test_transient_failures_back_off_then_give_up(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    attempts: list[tuple[int, float]] = []
    give_ups = GiveUps()

    async def handler(delivery: Delivery) -> None:
        attempts.append((delivery.attempt, time.monotonic()))
        raise TransientError("database down")

    async with running(queue, handler, on_give_up=give_ups):
        await asyncio.wait_for(give_ups.called.wait(), 5)

    assert [attempt for attempt, _ in attempts] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    # Jitter keeps each wait within the upper half of the capped exponential delay.
    assert gaps[0] >= 0.025 and gaps[1] >= 0.04
    [(message_id, attempt, reason)] = give_ups.calls
    assert (message_id, attempt) == ("m1", 3)
    assert "database down" in reason and "3 attempts" in reason
    # and the exhausted message waits in the dead-letter queue for an admin to redrive it
    for _ in range(100):
        if await queue.dead_letters(JOBS):
            break
        await asyncio.sleep(0.05)
    [(dead_id, body, dead_reason)] = await queue.dead_letters(JOBS)
    assert (dead_id, body, dead_reason) == ("m1", b"job", reason)
    await assert_settled(queue_rig, queue)


async def test_an_unexpected_error_is_retried_like_a_transient_one(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    attempts: list[int] = []
    succeeded = asyncio.Event()
    give_ups = GiveUps()

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            raise KeyError("flaky")
        succeeded.set()

    async with running(queue, handler, on_give_up=give_ups):
        await asyncio.wait_for(succeeded.wait(), 5)

    assert attempts == [1, 2]
    assert give_ups.calls == []
    await assert_settled(queue_rig, queue)


async def test_a_permanent_error_gives_up_at_once(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    give_ups = GiveUps()

    async def handler(delivery: Delivery) -> None:
        raise PermanentError("not a video")

    async with running(queue, handler, on_give_up=give_ups):
        await asyncio.wait_for(give_ups.called.wait(), 5)

    assert give_ups.calls == [("m1", 1, "not a video")]
    assert await queue.dead_letters(JOBS) == []
    await assert_settled(queue_rig, queue)


async def test_without_on_give_up_the_message_is_dead_lettered(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")

    async def handler(delivery: Delivery) -> None:
        raise PermanentError("not a video")

    async with running(queue, handler):
        for _ in range(100):
            if await queue.dead_letters(JOBS):
                break
            await asyncio.sleep(0.05)

    [(message_id, body, reason)] = await queue.dead_letters(JOBS)
    assert (message_id, body) == ("m1", b"job")
    assert "not a video" in reason


async def test_a_failing_give_up_keeps_the_message(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    reported = asyncio.Event()
    tries: list[int] = []

    async def handler(delivery: Delivery) -> None:
        raise PermanentError("not a video")

    async def on_give_up(delivery: Delivery, reason: str) -> None:
        tries.append(delivery.attempt)
        if len(tries) == 1:
            raise ConnectionError("event queue unreachable")
        reported.set()

    async with running(queue, handler, on_give_up=on_give_up):
        await asyncio.wait_for(reported.wait(), 5)

    assert tries == [1, 2]
    await assert_settled(queue_rig, queue)


async def test_stop_lets_the_in_flight_job_finish(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    await queue.publish(JOBS, b"job", message_id="m1")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(delivery: Delivery) -> None:
        started.set()
        await release.wait()
        finished.append(delivery.message_id)

    async with running(queue, handler) as (stop, task):
        await asyncio.wait_for(started.wait(), 5)
        stop.set()
        await queue.publish(JOBS, b"next", message_id="m2")
        await asyncio.sleep(0.2)
        assert not task.done()

        release.set()
        await asyncio.wait_for(task, 5)

    assert finished == ["m1"]
    await queue.close()
    after = queue_rig.open()
    later = await queue_rig.receive(after, JOBS)
    assert (later.message_id, later.attempt) == ("m2", 1)
    await later.ack()
    await queue_rig.expect_nothing(after, JOBS)


async def test_past_the_grace_the_job_is_cancelled_and_handed_back(queue_rig: QueueRig) -> None:
    queue = queue_rig.open(lease_seconds=60)
    await queue.publish(JOBS, b"job", message_id="m1")
    started = asyncio.Event()
    cancelled: list[str] = []

    async def handler(delivery: Delivery) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(delivery.message_id)
            raise

    async with running(queue, handler, grace_seconds=0.1) as (stop, task):
        await asyncio.wait_for(started.wait(), 5)
        stop.set()
        await asyncio.wait_for(task, 5)

    assert cancelled == ["m1"]
    again = await queue_rig.receive(queue_rig.open(), JOBS, timeout=1)
    assert (again.message_id, again.attempt) == ("m1", 2)


async def test_concurrency_runs_jobs_side_by_side(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()
    for n in range(3):
        await queue.publish(JOBS, b"job", message_id=f"m{n}")
    active: set[str] = set()
    most = 0
    two_running, release = asyncio.Event(), asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        nonlocal most
        active.add(delivery.message_id)
        most = max(most, len(active))
        if len(active) == 2:
            two_running.set()
        await release.wait()
        active.discard(delivery.message_id)

    async with running(queue, handler, concurrency=2):
        await asyncio.wait_for(two_running.wait(), 5)
        await asyncio.sleep(0.2)
        release.set()

    assert most == 2


async def test_the_heartbeat_shows_the_loop_alive(queue_rig: QueueRig, tmp_path: Path) -> None:
    heartbeat = Heartbeat(path=tmp_path / "probe" / "alive")
    assert Heartbeat.file_age_seconds(tmp_path / "probe" / "alive") == float("inf")

    async def handler(delivery: Delivery) -> None:
        pass

    async with running(queue_rig.open(), handler, heartbeat=heartbeat, heartbeat_seconds=0.05):
        await asyncio.sleep(0.3)
        assert time.time() - heartbeat.last_beat < 0.2
        assert Heartbeat.file_age_seconds(tmp_path / "probe" / "alive") < 1


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base_seconds=1.0, backoff_max_seconds=10.0)

    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (1000, 10.0)]:
        delays = [policy.delay_seconds(attempt) for _ in range(50)]
        assert all(cap / 2 <= delay <= cap for delay in delays)


async def test_bad_settings_are_refused(queue_rig: QueueRig) -> None:
    async def handler(delivery: Delivery) -> None:
        pass

    with pytest.raises(ValueError):
        await run_consumer(
            queue_rig.open(),
            JOBS,
            handler,
            stop=asyncio.Event(),
            max_attempts=0,
            backoff_base_seconds=1,
            backoff_max_seconds=1,
        )


class FlakyQueue(MemoryQueue):
    """A queue whose first `consume` fails, like a broker that drops the connection once."""

    def __init__(self) -> None:
        super().__init__(poll_seconds=0.01)
        self.failures = 0

    async def consume(self, queue: str) -> AsyncIterator[MemoryDelivery]:
        if self.failures == 0:
            self.failures += 1
            raise QueueError("connection reset")
        async for delivery in super().consume(queue):
            yield delivery


async def test_a_failing_queue_is_retried_after_a_pause() -> None:
    queue = FlakyQueue()
    await queue.publish(JOBS, b"job", message_id="m1")
    handled = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        handled.set()

    async with running(queue, handler):
        await asyncio.wait_for(handled.wait(), 5)

    assert queue.failures == 1
    await queue.close()


async def test_the_loop_ends_when_its_queue_is_closed(queue_rig: QueueRig) -> None:
    queue = queue_rig.open()

    async def handler(delivery: Delivery) -> None:
        pass

    async with running(queue, handler) as (_, task):
        await asyncio.sleep(0.1)
        await queue.close()
        await asyncio.wait_for(task, 5)
