"""The RabbitMQ queue: quorum queues, publisher confirms, manual acks, recovery by itself.

Each `RabbitMQQueue` owns one robust connection (`rabbitmq_connection`) whose channels come back,
with their consumers, when the broker does. A message held when its channel dies is put back by
the broker and delivered again, so a settlement that comes too late is dropped rather than sent on
the new channel. Retries with a delay go through fixed TTL queues (`rabbitmq_topology`), so a retry
never spins; `attempt` counts returns and retries alike (`rabbitmq_wire`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage

from earshot.common.messages import dead_letter_queue
from earshot.common.queue import QueueError
from earshot.common.queue.rabbitmq_admin import find_message, get_messages
from earshot.common.queue.rabbitmq_connection import TRANSIENT_ERRORS, RabbitMQConnection, Target
from earshot.common.queue.rabbitmq_consumer import Subscription, requeue, stale
from earshot.common.queue.rabbitmq_topology import is_dead_letter_queue, retry_bucket_ms
from earshot.common.queue.rabbitmq_wire import attempt_of, build_message, reason_of

Settlement = Literal["ack", "retry", "dead_letter"]
_log = structlog.get_logger()


def _limit_reason(deliveries: int, limit: int) -> str:
    return f"delivered {deliveries} times without an ack (limit {limit})"


class RabbitMQDelivery:
    """A message held by its queue's consuming channel until settled."""

    def __init__(
        self, message: AbstractIncomingMessage, *, queue: str, owner: RabbitMQQueue
    ) -> None:
        self.message_id = message.message_id or ""
        self.body = message.body
        self.attempt = attempt_of(message)
        self.queue = queue
        self.message = message
        self.settled = False
        self._owner = owner

    async def ack(self) -> None:
        """Remove the message."""
        await self._owner._settle(self, "ack")

    async def retry(self, *, delay_seconds: float) -> None:
        """Deliver it again after `delay_seconds` (through a retry queue when > 0)."""
        await self._owner._settle(self, "retry", delay_seconds=delay_seconds)

    async def dead_letter(self, *, reason: str) -> None:
        """Move the message to `QUEUE.dead` with `reason`."""
        await self._owner._settle(self, "dead_letter", reason=reason)


class RabbitMQQueue:
    """A `MessageQueue` on RabbitMQ 3.10+; connects on first use, declares what it uses."""

    def __init__(
        self,
        url: str,
        *,
        max_deliveries: int = 10,
        prefetch: int = 1,
        publish_timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        if max_deliveries < 1 or prefetch < 1 or publish_timeout_seconds <= 0:
            raise ValueError("max_deliveries and prefetch must be >= 1, the publish timeout > 0")
        self._connection = RabbitMQConnection(
            url,
            max_deliveries=max_deliveries,
            prefetch=prefetch,
            publish_timeout_seconds=publish_timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
        )
        self._max_deliveries = max_deliveries
        self._prefetch = prefetch
        self._subscriptions: set[Subscription] = set()

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every queue this connection declared (dead-letter and retry queues included)."""
        return self._connection.declared_queues

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        """Return once the broker confirmed the message; retries through a reconnection."""
        if self._connection.closed:
            raise QueueError("the queue is closed")
        message = build_message(body, message_id=message_id, attempts=0)
        await self._connection.send(message, queue=queue, target="queue", patient=True)

    async def consume(self, queue: str) -> AsyncIterator[RabbitMQDelivery]:
        """Deliveries from `queue` until the queue is closed (see `rabbitmq_consumer`)."""
        if self._connection.closed:
            return
        subscription = Subscription(
            await self._connection.consumable(queue), prefetch=self._prefetch
        )
        self._subscriptions.add(subscription)
        try:
            while (message := await subscription.next()) is not None:
                delivery = await self._accept(queue, message)
                if delivery is not None:
                    subscription.hold(delivery)
                    yield delivery
        finally:
            self._subscriptions.discard(subscription)
            await subscription.stop(connection_closed=self._connection.closed)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[tuple[str, bytes, str]]:
        """Dead-lettered messages of `queue` as (message_id, body, reason), left in place."""
        await self._connection.declare(queue)
        async with self._connection.scratch_channel() as channel:
            dead = await channel.get_queue(dead_letter_queue(queue))
            held = await get_messages(dead, limit=limit)
            return [(m.message_id or "", m.body, reason_of(m)) for m in held]

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Publish one dead-lettered message to `queue` again (attempts from 1), then drop it."""
        await self._connection.declare(queue)
        async with self._connection.scratch_channel() as channel:
            dead = await channel.get_queue(dead_letter_queue(queue))
            found = await find_message(dead, message_id)
            if found is None:
                return False
            copy = build_message(found.body, message_id=message_id, attempts=0)
            await self._connection.send(copy, queue=queue, target="queue", patient=True)
            await found.ack()
            return True

    async def check(self) -> None:
        """Raise `QueueError` unless the broker answers now."""
        if self._connection.closed:
            raise QueueError("the queue is closed")
        await self._connection.check()

    async def close(self) -> None:
        """End every `consume` and close the connection: unsettled deliveries go back at once."""
        if self._connection.closed:
            return
        for subscription in self._subscriptions:
            subscription.end()
        await self._connection.close()

    async def _accept(
        self, queue: str, message: AbstractIncomingMessage
    ) -> RabbitMQDelivery | None:
        """The delivery to hand out, or None for a stale message or one past the limit."""
        if stale(message):
            return None
        delivery = RabbitMQDelivery(message, queue=queue, owner=self)
        if is_dead_letter_queue(queue) or delivery.attempt <= self._max_deliveries:
            return delivery
        reason = _limit_reason(delivery.attempt - 1, self._max_deliveries)
        try:
            await self._settle(delivery, "dead_letter", reason=reason)
        except QueueError as exc:
            # Returned to the queue: the broker's own delivery limit is the backstop.
            _log.warning("queue.dead_letter_failed", queue=queue, error=str(exc))
        return None

    async def _settle(
        self,
        delivery: RabbitMQDelivery,
        how: Settlement,
        *,
        delay_seconds: float = 0.0,
        reason: str = "",
    ) -> None:
        if delivery.settled:
            _log.debug("queue.already_settled", message_id=delivery.message_id, how=how)
            return
        delivery.settled = True
        if self._connection.closed or stale(delivery.message):
            _log.warning("queue.delivery_lost", message_id=delivery.message_id, how=how)
            return
        if how != "ack" and is_dead_letter_queue(delivery.queue):
            # A dead-letter queue is read, not routed further: the message stays where it is.
            await requeue(delivery.message)
            return
        if how == "retry" and delivery.attempt >= self._max_deliveries:
            how, reason = "dead_letter", _limit_reason(delivery.attempt, self._max_deliveries)
        if how == "retry" and delay_seconds <= 0:
            # A return keeps the message's place; the quorum queue counts it as a delivery.
            await requeue(delivery.message)
            return
        try:
            if how != "ack":
                await self._send_copy(delivery, how=how, delay_seconds=delay_seconds, reason=reason)
            await delivery.message.ack()
        except TRANSIENT_ERRORS as exc:
            await requeue(delivery.message)
            raise QueueError(f"RabbitMQ: settling {delivery.message_id!r} failed: {exc!r}") from exc
        if how == "dead_letter":
            _log.warning("queue.dead_lettered", queue=delivery.queue, reason=reason)

    async def _send_copy(
        self, delivery: RabbitMQDelivery, *, how: Settlement, delay_seconds: float, reason: str
    ) -> None:
        target: Target = "dead"
        if how == "retry":
            target = retry_bucket_ms(delay_seconds)
        copy = build_message(
            delivery.body,
            message_id=delivery.message_id,
            attempts=delivery.attempt,
            reason=reason if how == "dead_letter" else None,
            expiration_seconds=delay_seconds if how == "retry" else None,
        )
        # Not patient: should the connection drop now, the broker puts the original back anyway.
        await self._connection.send(copy, queue=delivery.queue, target=target, patient=False)
