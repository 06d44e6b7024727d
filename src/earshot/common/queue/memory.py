"""The in-memory queue: a test double with the embedded queue's semantics, inside one process.

Connections (`MemoryQueue`) made over the same `MemoryBroker` see the same messages, like processes
sharing a queue file. Held deliveries never expire (their holder is this live process); closing a
connection hands its unsettled deliveries back.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal
from uuid import uuid4

from earshot.common.messages import dead_letter_queue
from earshot.common.queue import QueueError

Settlement = Literal["ack", "retry", "dead_letter"]


@dataclass(slots=True)
class _Record:
    queue: str
    message_id: str
    body: bytes
    deliveries: int = 0
    visible_at: float = 0.0
    token: str | None = None
    reason: str = ""


class MemoryBroker:
    """Messages shared by every `MemoryQueue` built over this broker."""

    def __init__(self) -> None:
        self._records: dict[int, _Record] = {}
        self._seq = itertools.count(1)

    def find(self, queue: str, message_id: str) -> int | None:
        """The sequence number of `message_id` in `queue`, if there."""
        for seq, record in self._records.items():
            if record.queue == queue and record.message_id == message_id:
                return seq
        return None

    def add(self, record: _Record) -> None:
        """Append a record (dicts keep insertion order: FIFO)."""
        self._records[next(self._seq)] = record

    def pop(self, seq: int) -> _Record | None:
        """Remove and return a record."""
        return self._records.pop(seq, None)

    def get(self, seq: int) -> _Record | None:
        """A record by sequence number."""
        return self._records.get(seq)

    def ready(self, queue: str, now: float) -> list[tuple[int, _Record]]:
        """Records of `queue` visible at `now`, in delivery order."""
        found = [
            (s, r) for s, r in self._records.items() if r.queue == queue and r.visible_at <= now
        ]
        return sorted(found, key=lambda item: (item[1].visible_at, item[0]))

    def move_to_dead(self, seq: int, reason: str) -> None:
        """Move a record to its queue's dead-letter queue."""
        record = self._records.pop(seq)
        dead = dead_letter_queue(record.queue)
        if (older := self.find(dead, record.message_id)) is not None:
            del self._records[older]
        self.add(_Record(dead, record.message_id, record.body, reason=reason))


@dataclass(frozen=True, slots=True)
class MemoryDelivery:
    """A held message of a `MemoryQueue`."""

    message_id: str
    body: bytes
    attempt: int
    seq: int
    token: str
    _owner: MemoryQueue = field(repr=False)

    async def ack(self) -> None:
        """Remove the message."""
        self._owner._settle(self, "ack")

    async def retry(self, *, delay_seconds: float) -> None:
        """Give the message back, visible again after `delay_seconds`."""
        self._owner._settle(self, "retry", delay_seconds=delay_seconds)

    async def dead_letter(self, *, reason: str) -> None:
        """Move the message to the dead-letter queue."""
        self._owner._settle(self, "dead_letter", reason=reason)


class MemoryQueue:
    """A `MessageQueue` over a `MemoryBroker` (a fresh one unless given)."""

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        poll_seconds: float = 0.01,
        lease_seconds: float = 30.0,
        max_deliveries: int = 10,
    ) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        self._poll_seconds = poll_seconds
        # Accepted for signature parity; a live process never loses its leases.
        self._lease_seconds = lease_seconds
        self._max_deliveries = max_deliveries
        self._held: dict[str, MemoryDelivery] = {}
        self._closed = False

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        """Store the message once per `message_id` while it is queued."""
        if self._closed:
            raise QueueError("the queue is closed")
        if self.broker.find(queue, message_id) is None:
            self.broker.add(_Record(queue, message_id, bytes(body), visible_at=time.monotonic()))

    async def consume(self, queue: str) -> AsyncIterator[MemoryDelivery]:
        """Deliveries from `queue` until the connection is closed."""
        while not self._closed:
            delivery = self._claim(queue)
            if delivery is None:
                await asyncio.sleep(self._poll_seconds)
            else:
                yield delivery

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[tuple[str, bytes, str]]:
        """Dead-lettered messages of `queue` as (message_id, body, reason), oldest first."""
        dead = self.broker.ready(dead_letter_queue(queue), math.inf)
        return [(r.message_id, r.body, r.reason) for _, r in dead][:limit]

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Move one dead-lettered message back to `queue` with a fresh delivery count."""
        seq = self.broker.find(dead_letter_queue(queue), message_id)
        if seq is None:
            return False
        record = self.broker.pop(seq)
        assert record is not None
        if self.broker.find(queue, message_id) is None:
            self.broker.add(_Record(queue, message_id, record.body, visible_at=time.monotonic()))
        return True

    async def check(self) -> None:
        """Raise `QueueError` once closed."""
        if self._closed:
            raise QueueError("the queue is closed")

    async def close(self) -> None:
        """Hand every unsettled delivery back at once."""
        self._closed = True
        for delivery in list(self._held.values()):
            self._settle(delivery, "retry")

    def _claim(self, queue: str) -> MemoryDelivery | None:
        for seq, record in self.broker.ready(queue, time.monotonic()):
            if record.deliveries >= self._max_deliveries:
                reason = f"delivered {record.deliveries} times without an ack"
                self.broker.move_to_dead(seq, f"{reason} (limit {self._max_deliveries})")
                continue
            record.deliveries += 1
            record.visible_at = math.inf
            record.token = uuid4().hex
            delivery = MemoryDelivery(
                record.message_id, record.body, record.deliveries, seq, record.token, self
            )
            self._held[record.token] = delivery
            return delivery
        return None

    def _settle(
        self,
        delivery: MemoryDelivery,
        how: Settlement,
        *,
        delay_seconds: float = 0.0,
        reason: str = "",
    ) -> None:
        if self._held.pop(delivery.token, None) is None:
            return
        record = self.broker.get(delivery.seq)
        if record is None or record.token != delivery.token:
            return
        if how == "ack":
            self.broker.pop(delivery.seq)
        elif how == "retry":
            record.token = None
            record.visible_at = time.monotonic() + max(0.0, delay_seconds)
        else:
            self.broker.move_to_dead(delivery.seq, reason)
