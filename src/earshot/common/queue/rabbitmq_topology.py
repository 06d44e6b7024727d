"""RabbitMQ topology: exchanges, quorum queues, dead-letter and retry queues, declared in code.

Every process declares what it uses on first use (declarations are idempotent), so nothing is made
by hand and a broker that lost its definitions gets them back from the next publish. Queues are
declared on short-lived channels: a declaration the broker refuses closes only that channel.

    publish  --> `earshot` (direct, key = queue name) --> QUEUE (quorum, delivery limit)
    dead     --> `earshot.dlx` (direct, key = QUEUE.dead) --> QUEUE.dead (quorum)
    retry    --> `earshot.retry.<ms>` (fanout, key kept) --> queue of the same name (quorum, TTL)
                 --expired, dead-lettered with its key--> `earshot` --> QUEUE
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractRobustChannel, AbstractRobustExchange
from aio_pika.exceptions import ChannelPreconditionFailed

from earshot.common.messages import dead_letter_queue

EXCHANGE = "earshot"
DEAD_LETTER_EXCHANGE = "earshot.dlx"
RETRY_PREFIX = "earshot.retry."
# Fixed delays (ms) a retry waits for at least; a message's own expiration shortens its wait
# within the bucket, so a retry waits between the requested delay and the bucket's length.
RETRY_BUCKETS_MS: tuple[int, ...] = tuple(250 * 2**n for n in range(15))  # 0.25 s .. 68 min

# At-least-once dead-lettering (3.10+) keeps a message in its queue until the target confirmed it;
# it requires `reject-publish` overflow. Without it quorum dead-lettering may drop messages.
_AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def is_dead_letter_queue(name: str) -> bool:
    """True for `QUEUE.dead` names: read and redriven, never dead-lettered again."""
    return name.endswith(dead_letter_queue(""))


def dead_letter_queue_of(name: str) -> str:
    """Where `name`'s poison messages go (a dead-letter queue is its own)."""
    return name if is_dead_letter_queue(name) else dead_letter_queue(name)


def retry_bucket_ms(delay_seconds: float) -> int:
    """The shortest retry bucket at least `delay_seconds` long (the longest one past it)."""
    wanted = math.ceil(delay_seconds * 1000)
    index = bisect.bisect_left(RETRY_BUCKETS_MS, wanted)
    return RETRY_BUCKETS_MS[min(index, len(RETRY_BUCKETS_MS) - 1)]


def main_queue_arguments(name: str, *, max_deliveries: int) -> dict[str, Any]:
    """A work queue: quorum, a delivery limit, its poison messages to `name.dead`."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max_deliveries,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(name),
        **_AT_LEAST_ONCE,
    }


def retry_queue_arguments(bucket_ms: int) -> dict[str, Any]:
    """A retry bucket: messages wait `bucket_ms` at most, then go back by their own key."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": bucket_ms,
        "x-dead-letter-exchange": EXCHANGE,
        **_AT_LEAST_ONCE,
    }


async def declare_exchanges(
    channel: AbstractRobustChannel,
) -> tuple[AbstractRobustExchange, AbstractRobustExchange]:
    """Declare the work and the dead-letter exchange."""
    exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, ExchangeType.DIRECT, durable=True)
    return exchange, dead


async def declare_queue(channel: AbstractChannel, name: str, *, max_deliveries: int) -> bool:
    """Declare `name` and its dead-letter queue (or a dead-letter queue alone), bound.

    False when `name` exists with other arguments (another delivery limit): the broker then closes
    `channel`, so use a channel of its own. Such a queue is kept as it is (see `bind_queue`).
    """
    dead_name = dead_letter_queue_of(name)
    dead = await channel.declare_queue(
        dead_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(DEAD_LETTER_EXCHANGE, dead_name)
    if dead_name == name:
        return True
    arguments = main_queue_arguments(name, max_deliveries=max_deliveries)
    try:
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed:
        return False
    await queue.bind(EXCHANGE, name)
    return True


async def bind_queue(channel: AbstractChannel, name: str) -> None:
    """Bind an existing queue to the work exchange, whatever its arguments."""
    queue = await channel.get_queue(name, ensure=True)
    await queue.bind(EXCHANGE, name)


async def declare_retry_queue(channel: AbstractChannel, bucket_ms: int) -> str:
    """Declare one retry bucket (a fanout exchange and a queue of the same name); its name."""
    name = f"{RETRY_PREFIX}{bucket_ms}"
    exchange = await channel.declare_exchange(name, ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(
        name, durable=True, arguments=retry_queue_arguments(bucket_ms)
    )
    await queue.bind(exchange)
    return name
