"""The consumer loop: retry with backoff, give up, graceful stop and liveness around a handler.

A handler is a plain `async def handle(delivery) -> None`. It raises `PermanentError` for work that
can never succeed and `TransientError` (or anything else) for work that may succeed later; the loop,
not the handler, acks, retries or gives up. `on_give_up` reports a failure (e.g. sends `JobFailed`).
A permanent failure is then acked (retrying cannot help); a message whose retries ran out goes to
the dead-letter queue, where an admin can look at it and redrive it. After `stop`, in-flight
handlers get `grace_seconds` to finish; then they are cancelled and their messages handed back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import structlog
from structlog.typing import FilteringBoundLogger

from earshot.common.queue import Delivery, MessageQueue, QueueError

T = TypeVar("T")
Handler = Callable[[Delivery], Awaitable[None]]
GiveUp = Callable[[Delivery, str], Awaitable[None]]

QUEUE_FAILURE_PAUSE_SECONDS = 1.0


class PermanentError(Exception):
    """The work can never succeed (bad input): give up at once, never retry."""


class TransientError(Exception):
    """The work may succeed later (a dependency is down): retry with backoff."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently failed work is retried."""

    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float

    def delay_seconds(self, attempt: int) -> float:
        """Wait before the next attempt after `attempt` failed: doubling, capped, jittered."""
        capped = min(
            self.backoff_max_seconds, self.backoff_base_seconds * 2 ** min(attempt - 1, 32)
        )
        # Jitter spreads retries of a batch that failed together; the floor keeps the backoff real.
        return random.uniform(capped / 2, capped)  # noqa: S311 - not security-relevant


@dataclass(slots=True)
class Heartbeat:
    """Liveness: `last_beat` (epoch seconds) and, when `path` is set, that file's mtime."""

    path: Path | None = None
    last_beat: float = 0.0

    def beat(self) -> None:
        """Record that the loop is alive now."""
        self.last_beat = time.time()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    @staticmethod
    def file_age_seconds(path: Path) -> float:
        """Seconds since `path` was last touched (infinite when missing): a probe's test."""
        try:
            return time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return float("inf")


async def run_consumer(
    queue: MessageQueue,
    name: str,
    handler: Handler,
    *,
    stop: asyncio.Event,
    max_attempts: int,
    backoff_base_seconds: float,
    backoff_max_seconds: float,
    on_give_up: GiveUp | None = None,
    concurrency: int = 1,
    grace_seconds: float = 30.0,
    heartbeat: Heartbeat | None = None,
    heartbeat_seconds: float = 5.0,
    log: FilteringBoundLogger | None = None,
) -> None:
    """Feed deliveries of queue `name` to `handler` until `stop` is set, then drain and return."""
    if max_attempts < 1 or concurrency < 1:
        raise ValueError("max_attempts and concurrency must be >= 1")
    policy = RetryPolicy(max_attempts, backoff_base_seconds, backoff_max_seconds)
    bound = (log if log is not None else structlog.get_logger()).bind(queue=name)
    consumer = _Consumer(queue, name, handler, policy, on_give_up, stop, concurrency, bound)
    beating = asyncio.create_task(_beat(heartbeat, heartbeat_seconds, bound)) if heartbeat else None
    grace = grace_seconds
    try:
        await consumer.run()
    except asyncio.CancelledError:
        grace = 0.0
        raise
    finally:
        await consumer.drain(grace)
        if beating is not None:
            beating.cancel()
            await asyncio.wait([beating])


async def _beat(heartbeat: Heartbeat, every_seconds: float, log: FilteringBoundLogger) -> None:
    while True:
        try:
            heartbeat.beat()
        except OSError as exc:
            log.warning("worker.heartbeat_failed", error=str(exc))
        await asyncio.sleep(every_seconds)


class _Consumer:
    """Takes deliveries while a slot is free and runs each in its own task."""

    def __init__(
        self,
        queue: MessageQueue,
        name: str,
        handler: Handler,
        policy: RetryPolicy,
        on_give_up: GiveUp | None,
        stop: asyncio.Event,
        concurrency: int,
        log: FilteringBoundLogger,
    ) -> None:
        self._queue, self._name, self._handler = queue, name, handler
        self._policy, self._on_give_up, self._stop, self._log = policy, on_give_up, stop, log
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[asyncio.Task[None], Delivery] = {}

    async def run(self) -> None:
        """Dispatch until stopped; a failing queue is retried after a pause."""
        self._log.info("worker.started")
        while not self._stop.is_set():
            deliveries = self._queue.consume(self._name)
            try:
                if await self._dispatch(deliveries) == "ended":
                    self._log.warning("worker.queue_closed")
                    return
            except QueueError as exc:
                self._log.error("worker.queue_failed", error=str(exc))
                await self._until_stopped(asyncio.sleep(QUEUE_FAILURE_PAUSE_SECONDS))
            finally:
                aclose = getattr(deliveries, "aclose", None)
                if aclose is not None:
                    await aclose()
        self._log.info("worker.stopping", in_flight=len(self._in_flight))

    async def drain(self, grace_seconds: float) -> None:
        """Let in-flight handlers finish; past the grace, cancel them and hand messages back."""
        held = dict(self._in_flight)
        if not held:
            return
        _, late = await asyncio.wait(held, timeout=grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        for task in late:
            self._log.warning("worker.handed_back", message_id=held[task].message_id)
            await _settle(held[task].retry(delay_seconds=0), self._log)

    async def _dispatch(self, deliveries: AsyncIterator[Delivery]) -> Literal["stopped", "ended"]:
        while True:
            if await self._until_stopped(self._slots.acquire()) is None:
                return "stopped"
            try:
                delivery = await self._until_stopped(_next_or_none(deliveries))
            except BaseException:
                self._slots.release()
                raise
            if delivery is None:
                self._slots.release()
                return "stopped" if self._stop.is_set() else "ended"
            if self._stop.is_set():
                # It arrived together with the stop: hand it back rather than start it now.
                self._slots.release()
                await _settle(delivery.retry(delay_seconds=0), self._log)
                return "stopped"
            task = asyncio.create_task(self._process(delivery))
            self._in_flight[task] = delivery
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._slots.release()

    async def _until_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """The awaitable's result, or None when `stop` is set first (the awaitable is cancelled)."""
        work = asyncio.ensure_future(awaitable)
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            work.cancel()
            await asyncio.wait({work, stopping})
        return None if work.cancelled() else work.result()

    async def _process(self, delivery: Delivery) -> None:
        log = self._log.bind(message_id=delivery.message_id, attempt=delivery.attempt)
        try:
            await self._handler(delivery)
        except PermanentError as exc:
            # The handler's own words: reasons of permanent failures are shown to users.
            await self._give_up(delivery, str(exc) or type(exc).__name__, log, exhausted=False)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await self._failed(delivery, RuntimeError("the handler raised CancelledError"), log)
        except Exception as exc:
            await self._failed(delivery, exc, log)
        else:
            log.info("worker.succeeded")
            await _settle(delivery.ack(), log)

    async def _failed(self, delivery: Delivery, exc: Exception, log: FilteringBoundLogger) -> None:
        unexpected = not isinstance(exc, TransientError)
        if delivery.attempt >= self._policy.max_attempts:
            reason = f"gave up after {delivery.attempt} attempts: {_describe(exc)}"
            await self._give_up(delivery, reason, log, exhausted=True)
            return
        delay = self._policy.delay_seconds(delivery.attempt)
        # A traceback only for the unexpected: a TransientError is already an explanation.
        trace = {"exc_info": exc} if unexpected else {}
        log.warning("worker.retrying", error=_describe(exc), delay_seconds=round(delay, 3), **trace)
        await _settle(delivery.retry(delay_seconds=delay), log)

    async def _give_up(
        self, delivery: Delivery, reason: str, log: FilteringBoundLogger, *, exhausted: bool
    ) -> None:
        if self._on_give_up is None:
            log.error("worker.dead_lettered", reason=reason)
            await _settle(delivery.dead_letter(reason=reason), log)
            return
        try:
            await self._on_give_up(delivery, reason)
        except Exception as exc:
            # Acking now would lose the failure report: keep the message and try again later.
            delay = self._policy.delay_seconds(delivery.attempt)
            log.error("worker.give_up_failed", error=_describe(exc), delay_seconds=round(delay, 3))
            await _settle(delivery.retry(delay_seconds=delay), log)
            return
        log.error("worker.gave_up", reason=reason, dead_lettered=exhausted)
        await _settle(delivery.dead_letter(reason=reason) if exhausted else delivery.ack(), log)


async def _next_or_none(deliveries: AsyncIterator[Delivery]) -> Delivery | None:
    try:
        return await anext(deliveries)
    except StopAsyncIteration:
        return None


async def _settle(settlement: Awaitable[None], log: FilteringBoundLogger) -> None:
    """Settle, logging failures: an unsettled message comes back when its lease lapses."""
    try:
        await settlement
    except Exception as exc:
        log.error("worker.settle_failed", error=_describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
