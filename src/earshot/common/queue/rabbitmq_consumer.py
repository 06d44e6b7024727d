"""One `consume` iteration on RabbitMQ: broker consumers pushing into a local inbox.

Each broker consumer has `prefetch` credit. A new one is added whenever the caller asks for another
delivery while holding every one it can get, so a worker running N jobs at once holds N (with
prefetch 1) without being told its concurrency, and a busy worker takes nothing more from the queue
that an idle one could have had.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustQueue
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from earshot.common.queue import QueueError


class Held(Protocol):
    """A delivery as its subscription sees it."""

    @property
    def settled(self) -> bool: ...

    @property
    def message(self) -> AbstractIncomingMessage: ...


def stale(message: AbstractIncomingMessage) -> bool:
    """True when the message's channel is gone: the broker has put the message back already."""
    try:
        return message.channel.is_closed
    except RuntimeError:
        return True


async def requeue(message: AbstractIncomingMessage) -> None:
    """Return a message to its queue (it counts as a delivery on quorum queues)."""
    # Best effort: if the channel is gone the broker has requeued the message by itself.
    with contextlib.suppress(*CONNECTION_EXCEPTIONS):
        await message.nack(requeue=True)


class Subscription:
    """Broker consumers of one queue feeding one iterator; `end` makes `next` return None."""

    def __init__(self, source: AbstractRobustQueue, *, prefetch: int) -> None:
        self._source = source
        self._prefetch = prefetch
        self._messages: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._tags: list[str] = []
        self._held: list[Held] = []
        self._stopped = False

    async def next(self) -> AbstractIncomingMessage | None:
        """The next pushed message; asks the broker for more credit when all of it is held."""
        self._held = [d for d in self._held if not d.settled and not stale(d.message)]
        if self._messages.empty() and len(self._held) >= len(self._tags) * self._prefetch:
            try:
                self._tags.append(await self._source.consume(self._receive))
            except CONNECTION_EXCEPTIONS as exc:
                raise QueueError(
                    f"RabbitMQ: cannot consume {self._source.name!r}: {exc!r}"
                ) from exc
        return await self._messages.get()

    def hold(self, delivery: Held) -> None:
        """Count `delivery` against the credit until it is settled."""
        self._held.append(delivery)

    def end(self) -> None:
        """Make the waiting (or next) `next` return None."""
        self._messages.put_nowait(None)

    async def stop(self, *, connection_closed: bool) -> None:
        """Cancel the broker consumers and return what was pushed but not taken."""
        self._stopped = True
        pending = []
        while not self._messages.empty():
            if (message := self._messages.get_nowait()) is not None:
                pending.append(message)
        if connection_closed:
            return  # closing the connection returned them all
        for tag in self._tags:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await self._source.cancel(tag)
        for message in pending:
            await requeue(message)

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        if not self._stopped:
            self._messages.put_nowait(message)
            return
        # A consumer whose cancel did not get through (cancelled, or lost and then restored).
        if message.consumer_tag is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await self._source.cancel(message.consumer_tag)
        await requeue(message)
