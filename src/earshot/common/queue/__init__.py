"""The message-queue port: durable at-least-once queues with acks, delayed retry and dead-lettering.

Adapters: `embedded` (SQLite file shared by processes on one machine; the default), `rabbitmq`
(quorum queues on RabbitMQ 3.10+) and `memory` (a test double). Only the adapters speak to a
broker; services see `MessageQueue` and `Delivery`.

Delivery is at least once: a message can arrive twice (a publish retried after a lost confirm, a
consumer that died after its work but before its ack), so consumers must be idempotent. Promises
that differ by adapter, stated by the contract tests' rig:
- deduplication: the embedded and memory queues keep one copy of a `message_id` published twice
  while it is queued; RabbitMQ keeps both.
- redelivery of a dead holder's message: the embedded queue waits for its lease to lapse
  (`lease_seconds`); RabbitMQ redelivers as soon as it sees the connection drop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class QueueError(Exception):
    """The broker is unreachable or refused a message; the caller must not report success."""


class Delivery(Protocol):
    """One message handed to one consumer. Held (invisible to others) until settled."""

    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    @property
    def attempt(self) -> int:
        """How many times this message has been delivered, this time included (from 1).

        Counts retries and returns (a consumer that died or closed while holding it).
        """
        ...

    async def ack(self) -> None:
        """Done: the message is removed."""
        ...

    async def retry(self, *, delay_seconds: float) -> None:
        """Give the message back, to be delivered again after `delay_seconds`."""
        ...

    async def dead_letter(self, *, reason: str) -> None:
        """Move the message to the queue's dead-letter queue."""
        ...


class MessageQueue(Protocol):
    """A broker connection."""

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        """Store durably or raise `QueueError`. Returns only once the broker holds the message."""
        ...

    def consume(self, queue: str) -> AsyncIterator[Delivery]:
        """Deliveries from `queue` until the connection is closed; held ones stay held meanwhile.

        A message delivered `max_deliveries` times without an ack is dead-lettered instead.
        """
        ...

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[tuple[str, bytes, str]]:
        """Dead-lettered messages of `queue` as (message_id, body, reason)."""
        ...

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Move one dead-lettered message back to `queue`. False when it is not there."""
        ...

    async def check(self) -> None:
        """Raise `QueueError` when the broker is not reachable (readiness)."""
        ...

    async def close(self) -> None: ...


def open_queue(
    url: str,
    *,
    poll_seconds: float = 0.2,
    lease_seconds: float = 30.0,
    max_deliveries: int = 10,
) -> MessageQueue:
    """Build the adapter chosen by `url`'s scheme.

    `sqlite:///PATH`: the embedded queue (`poll_seconds`, `lease_seconds` apply).
    `amqp://USER:PASS@HOST:PORT/VHOST` or `amqps://...` (aio-pika's query options allowed, e.g.
    `?heartbeat=30`): RabbitMQ; a consumer holds one unacked message per delivery it works on.
    """
    if url.startswith(("amqp://", "amqps://")):
        from earshot.common.queue.rabbitmq import RabbitMQQueue

        return RabbitMQQueue(url, max_deliveries=max_deliveries)
    if url.startswith("sqlite:///"):
        from earshot.common.queue.embedded import EmbeddedQueue

        return EmbeddedQueue(
            url.removeprefix("sqlite:///"),
            poll_seconds=poll_seconds,
            lease_seconds=lease_seconds,
            max_deliveries=max_deliveries,
        )
    scheme = url.split(":", 1)[0]
    raise QueueError(
        f"unsupported broker URL scheme {scheme!r} (supported: sqlite:///PATH, amqp://, amqps://)"
    )
