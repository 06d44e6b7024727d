"""Browsing a RabbitMQ queue without consuming it: get with manual ack, put back on channel close.

AMQP has no "peek": an admin reads messages with `basic.get` on a short-lived channel and closes
it, which returns every message it did not ack to the queue. While held they are invisible to
others, so browse a dead-letter queue, not a busy work queue.
"""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue


async def get_messages(queue: AbstractQueue, *, limit: int) -> list[AbstractIncomingMessage]:
    """Up to `limit` messages of `queue`, held unacked by the queue's channel."""
    held: list[AbstractIncomingMessage] = []
    while len(held) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        held.append(message)
    return held


async def find_message(queue: AbstractQueue, message_id: str) -> AbstractIncomingMessage | None:
    """The first message of `queue` with `message_id`; every message read stays held unacked."""
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        if message.message_id == message_id:
            return message
    return None
