"""Fixtures for the queue and blob contracts: one rig per adapter, each test runs against all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from earshot.common.blobs import BlobStore, open_blob_store
from earshot.common.blobs.s3 import S3BlobStore
from earshot.common.blobs.s3_options import S3Options
from earshot.common.queue import Delivery, MessageQueue, open_queue
from earshot.common.queue.memory import MemoryBroker, MemoryQueue
from earshot.common.queue.rabbitmq import RabbitMQQueue
from tests.moto_server import MotoServer, TestBucket, use_test_credentials
from tests.rabbitmq import delete_queues, rabbitmq_url  # noqa: F401 - a session fixture

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
    # Promises only some adapters make (see the port's docstring).
    deduplicates: bool = True  # a message_id published twice while queued is kept once
    leases: bool = True  # a dead holder's message comes back only once its lease lapses
    clean_up: Callable[[list[MessageQueue]], Awaitable[None]] | None = None
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


def _queue_rig(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> QueueRig:
    if kind == "rabbitmq":
        # One virtual host per session; each test deletes the queues it declared.
        amqp_url: str = request.getfixturevalue("rabbitmq_url")

        def rabbitmq(poll: float, lease: float, max_deliveries: int) -> MessageQueue:
            return open_queue(amqp_url, max_deliveries=max_deliveries)

        async def delete_declared(opened: list[MessageQueue]) -> None:
            declared = (q.declared_queues for q in opened if isinstance(q, RabbitMQQueue))
            await delete_queues(amqp_url, (name for names in declared for name in names))

        return QueueRig(
            "rabbitmq",
            rabbitmq,
            amqp_url,
            deduplicates=False,
            leases=False,
            clean_up=delete_declared,
        )
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


RABBITMQ = pytest.param("rabbitmq", marks=pytest.mark.integration)


@pytest.fixture(params=["embedded", "memory", RABBITMQ])
async def queue_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueRig]:
    """Every queue adapter."""
    rig = _queue_rig(request.param, request, tmp_path)
    yield rig
    for queue in rig.opened:
        await queue.close()
    if rig.clean_up is not None:
        await rig.clean_up(rig.opened)


@pytest.fixture(params=["embedded", RABBITMQ])
async def shared_queue_rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[QueueRig]:
    """The queue adapters that other processes can reach (the in-memory fake cannot)."""
    rig = _queue_rig(request.param, request, tmp_path)
    yield rig
    for queue in rig.opened:
        await queue.close()
    if rig.clean_up is not None:
        await rig.clean_up(rig.opened)


@dataclass
class BlobRig:
    """One blob store plus a look at the adapter's leftovers of unfinished writes."""

    kind: str
    store: BlobStore
    temp_files: Callable[[], list[Path]]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """The endpoint of a moto S3 server shared by the session (each test has its own bucket)."""
    with MotoServer() as server:
        yield server.endpoint_url


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.integration)])
async def blob_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobRig]:
    if request.param == "s3":
        async with _s3_blob_rig(request, tmp_path) as rig:
            yield rig
        return
    root = tmp_path / "blobs"
    store = open_blob_store(f"file://{root}")

    def temp_files() -> list[Path]:
        tmp_dir = root / ".tmp"
        return sorted(tmp_dir.iterdir()) if tmp_dir.exists() else []

    yield BlobRig(request.param, store, temp_files)
    await store.close()


@asynccontextmanager
async def _s3_blob_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobRig]:
    use_test_credentials(request.getfixturevalue("monkeypatch"))
    bucket = TestBucket(request.getfixturevalue("moto_s3"))
    copies = tmp_path / "s3-copies"
    copies.mkdir()
    store = S3BlobStore(S3Options.from_url(bucket.storage_url(create_bucket="1")), temp_dir=copies)
    # Creates the bucket, and loads botocore's models before any test measures memory.
    await store.check()

    def temp_files() -> list[Path]:
        return sorted(copies.iterdir()) + [Path(name) for name in bucket.unfinished_uploads()]

    yield BlobRig("s3", store, temp_files)
    await store.close()
    bucket.destroy()
