"""Fixtures for the queue and blob contracts: one rig per adapter, each test runs against all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from earshot.common.blobs import BlobStore, open_blob_store
from earshot.common.queue import Delivery, MessageQueue, open_queue
from earshot.common.queue.memory import MemoryBroker, MemoryQueue

QueueFactory = Callable[[float, float, int], MessageQueue]


async def close_iterator(iterator: AsyncIterator[object]) -> None:
    """Finish a `consume` iterator (async generators hold their state until closed)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass
class QueueRig:
    """Opens connections to one broker (as separate processes would) and closes them all after."""

    kind: str
    factory: QueueFactory
    # How another process reaches the same broker; None when it lives inside this process only.
    url: str | None
    opened: list[MessageQueue] = field(default_factory=list)

    def open(
        self, *, poll_seconds: float = 0.02, lease_seconds: float = 5.0, max_deliveries: int = 10
    ) -> MessageQueue:
        """A new connection to the shared broker."""
        queue = self.factory(poll_seconds, lease_seconds, max_deliveries)
        self.opened.append(queue)
        return queue

    @staticmethod
    async def receive(queue: MessageQueue, name: str, *, timeout: float = 3.0) -> Delivery:
        """The next delivery from `name`; fails the test after `timeout` seconds."""
        deliveries = queue.consume(name)
        try:
            return await asyncio.wait_for(anext(deliveries), timeout)
        finally:
            await close_iterator(deliveries)

    @classmethod
    async def expect_nothing(cls, queue: MessageQueue, name: str, *, seconds: float = 0.3) -> None:
        """Assert that `name` delivers nothing for `seconds`."""
        try:
            delivery = await cls.receive(queue, name, timeout=seconds)
        except TimeoutError:
            return
        pytest.fail(f"unexpected delivery {delivery.message_id} (attempt {delivery.attempt})")


def _queue_rig(kind: str, tmp_path: Path) -> QueueRig:
    if kind == "embedded":
        # A folder that does not exist yet: the adapter must create it.
        url = f"sqlite:///{tmp_path / 'data' / 'queue.db'}"

        def embedded(poll: float, lease: float, max_deliveries: int) -> MessageQueue:
            return open_queue(
                url, poll_seconds=poll, lease_seconds=lease, max_deliveries=max_deliveries
            )

        return QueueRig("embedded", embedded, url)
    broker = MemoryBroker()

    def memory(poll: float, lease: float, max_deliveries: int) -> MessageQueue:
        return MemoryQueue(
            broker, poll_seconds=poll, lease_seconds=lease, max_deliveries=max_deliveries
        )

    return QueueRig("memory", memory, None)


@pytest.fixture(params=["embedded", "memory"])
async def queue_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueRig]:
    """Every queue adapter."""
    rig = _queue_rig(request.param, tmp_path)
    yield rig
    for queue in rig.opened:
        await queue.close()


@pytest.fixture(params=["embedded"])
async def shared_queue_rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[QueueRig]:
    """The queue adapters that other processes can reach (the in-memory fake cannot)."""
    rig = _queue_rig(request.param, tmp_path)
    yield rig
    for queue in rig.opened:
        await queue.close()


@dataclass
class BlobRig:
    """One blob store plus a look at the adapter's leftovers of unfinished writes."""

    kind: str
    store: BlobStore
    temp_files: Callable[[], list[Path]]


@pytest.fixture(params=["folder"])
async def blob_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobRig]:
    root = tmp_path / "blobs"
    store = open_blob_store(f"file://{root}")

    def temp_files() -> list[Path]:
        tmp_dir = root / ".tmp"
        return sorted(tmp_dir.iterdir()) if tmp_dir.exists() else []

    yield BlobRig(request.param, store, temp_files)
    await store.close()
