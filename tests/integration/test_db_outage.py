"""A database that is down, silent or cut off: the gateway answers 503 with Retry-After, fast.

The connect timeout bounds a server that never answers; an outage is `OperationalError` whatever
the driver, so the gateway's one handler covers MariaDB and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.db import create_engine
from earshot.common.problems import PROBLEM_MEDIA_TYPE
from earshot.common.queue.memory import MemoryQueue
from earshot.gateway.app import create_app
from earshot.gateway.settings import GatewaySettings
from tests.integration.conftest import (
    MARIADB_ADDRESS,
    POSTGRESQL_ADDRESS,
    fresh_database,
    mariadb_url,
    migrate_all,
    postgresql_url,
    require_engine,
)
from tests.integration.faults import TcpProxy
from tests.net import free_port
from tests.unit.gateway.helpers import TokenMaker

pytestmark = pytest.mark.integration

SERVERS = ["mariadb", "postgresql"]
RETRY_AFTER_SECONDS = 7
SCHEMES = {"mariadb": "mysql+asyncmy://root", "postgresql": "postgresql+asyncpg://postgres"}


def url_at(kind: str, port: int, database: str = "jobs") -> str:
    return f"{SCHEMES[kind]}@127.0.0.1:{port}/{database}"


@contextlib.asynccontextmanager
async def gateway_on(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway app over `engine`, called in-process."""
    settings = GatewaySettings(data_dir=tmp_path, db_retry_after_seconds=RETRY_AFTER_SECONDS)
    tokens = TokenMaker()
    async with httpx.AsyncClient() as auth_client:
        app = create_app(
            settings,
            engine=engine,
            blobs=FolderBlobStore(tmp_path / "blobs"),
            queue=MemoryQueue(),
            verifier=tokens.verifier(),
            auth_client=auth_client,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw.test", headers=tokens.headers()
        ) as client:
            yield client


def assert_unavailable(api: httpx.Response, course: httpx.Response) -> None:
    assert api.status_code == 503, api.text
    assert api.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert api.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert course.status_code == 503, course.text
    assert course.headers["content-type"].startswith("text/plain")
    assert course.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


async def ask(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, float]:
    started = time.monotonic()
    api = await client.get("/api/v1/jobs")
    course = await client.get("/download", params={"fid": "0" * 24})
    return api, course, time.monotonic() - started


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_server_that_is_down_is_503_at_once(kind: str, tmp_path: Path) -> None:
    engine = create_engine(url_at(kind, free_port()))  # the default timeouts
    try:
        async with gateway_on(engine, tmp_path) as client:
            api, course, seconds = await ask(client)
    finally:
        await engine.dispose()

    assert_unavailable(api, course)
    assert seconds < 2.0


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and then says nothing (a hung or firewalled server)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.transport.abort()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_server_that_never_answers_is_503_within_the_connect_timeout(
    kind: str, tmp_path: Path, silent_server: int
) -> None:
    engine = create_engine(url_at(kind, silent_server), connect_timeout_seconds=1.0)
    try:
        async with gateway_on(engine, tmp_path) as client:
            api, course, seconds = await ask(client)
    finally:
        await engine.dispose()

    assert_unavailable(api, course)
    assert seconds < 2 * 1.0 + 1.5  # two requests, each bounded by the connect timeout


@pytest.fixture(params=SERVERS)
def jobs_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a migrated jobs database on each server."""
    kind = str(request.param)
    require_engine(kind)
    with fresh_database(kind, tmp_path) as url:
        yield kind, url


async def test_a_database_cut_off_while_serving_is_503_then_recovers(
    jobs_database: tuple[str, str], tmp_path: Path
) -> None:
    kind, direct_url = jobs_database
    await migrate_all(direct_url)
    proxy = TcpProxy((MARIADB_ADDRESS if kind == "mariadb" else POSTGRESQL_ADDRESS)[1])
    proxy.start()
    engine = create_engine(url_at(kind, proxy.port, direct_url.rsplit("/", 1)[1]))
    try:
        async with gateway_on(engine, tmp_path) as client:
            # given a gateway with pooled connections to its database
            assert (await client.get("/api/v1/jobs")).status_code == 200
            # when the database goes away (every connection dropped, nothing listening)
            proxy.cut()
            api, course, seconds = await ask(client)
            # then 503 with Retry-After, quickly; and service resumes once it is back
            assert_unavailable(api, course)
            assert seconds < 2.0
            proxy.restore()
            assert (await client.get("/api/v1/jobs")).status_code == 200
    finally:
        await engine.dispose()
        proxy.stop()


@pytest.mark.parametrize(
    ("kind", "slow_query"),
    [("mariadb", "SELECT SLEEP(5)"), ("postgresql", "SELECT pg_sleep(5)")],
)
async def test_a_query_past_the_timeout_set_in_the_url_is_an_outage(
    kind: str, slow_query: str
) -> None:
    # given the driver's query timeout set to 1 s in the URL (it wins over earshot's 30 s)
    require_engine(kind)
    option = "read_timeout" if kind == "mariadb" else "command_timeout"
    base = mariadb_url("mysql") if kind == "mariadb" else postgresql_url()
    engine = create_engine(f"{base}?{option}=1")
    started = time.monotonic()
    try:
        # when a query hangs (a locked row, a frozen server), then it fails as an outage
        with pytest.raises(OperationalError):
            async with engine.connect() as connection:
                await connection.execute(text(slow_query))
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 3.0
