"""Gateway fixtures: the real app over a SQLite file, the folder blob store, the embedded queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.db import create_engine
from earshot.common.queue import MessageQueue
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.app import create_app
from earshot.gateway.deps import Gateway
from earshot.gateway.main import prepare
from earshot.gateway.settings import GatewaySettings
from tests.unit.gateway.helpers import FlakyQueue, TokenMaker, fake_auth


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path,
        max_upload_bytes=50 * 1024 * 1024,
        upload_chunk_bytes=64 * 1024,
        outbox_poll_seconds=0.05,
        outbox_backoff_max_seconds=0.2,
        public_url="http://gateway.test",
    )


@pytest.fixture
async def engine(settings: GatewaySettings) -> AsyncIterator[AsyncEngine]:
    await prepare(settings)
    engine = create_engine(settings.jobs_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> FolderBlobStore:
    return FolderBlobStore(tmp_path / "blobs")


@pytest.fixture
async def embedded_queue(tmp_path: Path) -> AsyncIterator[EmbeddedQueue]:
    queue = EmbeddedQueue(tmp_path / "queue.db", poll_seconds=0.02, lease_seconds=5)
    yield queue
    await queue.close()


@pytest.fixture
def queue(embedded_queue: EmbeddedQueue) -> FlakyQueue:
    """The embedded queue, with a switch that makes `publish` fail like a broker outage."""
    return FlakyQueue(embedded_queue)


@pytest.fixture
def tokens() -> TokenMaker:
    return TokenMaker()


@pytest.fixture
def auth_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def auth_client(auth_calls: list[httpx.Request]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_auth(auth_calls))) as client:
        yield client


@pytest.fixture
def make_app(
    settings: GatewaySettings,
    engine: AsyncEngine,
    blobs: FolderBlobStore,
    queue: MessageQueue,
    tokens: TokenMaker,
    auth_client: httpx.AsyncClient,
) -> Callable[..., FastAPI]:
    def build(**overrides: Any) -> FastAPI:
        app_settings = overrides.pop("settings", settings)
        adapters: dict[str, Any] = {
            "engine": engine,
            "blobs": blobs,
            "queue": queue,
            "verifier": tokens.verifier(),
            "auth_client": auth_client,
        }
        adapters.update(overrides)
        return create_app(app_settings, **adapters)

    return build


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
def gateway(app: FastAPI) -> Gateway:
    found = app.state.gateway
    assert isinstance(found, Gateway)
    return found


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4242))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client
