"""Real databases for the integration tier: a fresh, uniquely named database per test module.

MariaDB and PostgreSQL must be running on this machine (`.ci/run` starts them); a missing engine
fails the test with a message saying so, it is never skipped. SQLite runs alongside them, so each
database contract test is written once and proven on all three.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as raw_async_engine
from sqlalchemy.pool import NullPool

from earshot.common.db import create_engine, migrate, session_factory

MARIADB_ADDRESS = ("127.0.0.1", 3306)
POSTGRESQL_ADDRESS = ("127.0.0.1", 5432)
DATABASE_KINDS = ("sqlite", "mariadb", "postgresql")
SERVICE_MIGRATIONS = {
    "auth": "earshot.auth:migrations",
    "gateway": "earshot.gateway:migrations",
    "notifier": "earshot.notifier:migrations",
}
_ENGINES = {
    "mariadb": ("MariaDB", MARIADB_ADDRESS),
    "postgresql": ("PostgreSQL", POSTGRESQL_ADDRESS),
}
T = TypeVar("T")


def mariadb_url(name: str = "", *, user: str = "root", password: str = "") -> str:
    """`mysql+asyncmy://` URL of database `name` on the local MariaDB."""
    host, port = MARIADB_ADDRESS
    credentials = f"{user}:{password}" if password else user
    return f"mysql+asyncmy://{credentials}@{host}:{port}/{name}"


def postgresql_url(name: str = "postgres", *, user: str = "postgres") -> str:
    """`postgresql+asyncpg://` URL of database `name` on the local PostgreSQL."""
    host, port = POSTGRESQL_ADDRESS
    return f"postgresql+asyncpg://{user}@{host}:{port}/{name}"


def unique_name(prefix: str = "earshot_test") -> str:
    """A database (or user) name no other test session uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def require_engine(kind: str) -> None:
    """Fail the test at once, with what to do, when the engine `kind` does not answer."""
    if kind not in _ENGINES:
        return
    label, (host, port) = _ENGINES[kind]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.fail(
            f"{label} is not reachable on {host}:{port} ({exc}). The integration tests need it "
            "running: `.ci/run` starts the engines (or start it by hand), then run them again.",
            pytrace=False,
        )


def run_in_own_loop(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion in a thread of its own.

    Module-scoped fixtures outlive the per-test event loops, so what they do on a server happens
    in a loop they own, which connections never cross.
    """

    async def run() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


async def _admin(kind: str, statement: str) -> None:
    url = mariadb_url() if kind == "mariadb" else postgresql_url()
    # NullPool and AUTOCOMMIT: CREATE/DROP DATABASE cannot run in a transaction on PostgreSQL.
    engine = raw_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_database(kind: str, name: str) -> str:
    """Create an empty database on the server `kind`; its URL."""
    require_engine(kind)
    if kind == "mariadb":
        statement = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        run_in_own_loop(lambda: _admin(kind, statement))
        return mariadb_url(name)
    run_in_own_loop(lambda: _admin(kind, f'CREATE DATABASE "{name}"'))
    return postgresql_url(name)


def drop_database(kind: str, name: str) -> None:
    """Drop a database made by `create_database`, whoever is still connected to it."""
    if kind == "mariadb":
        run_in_own_loop(lambda: _admin(kind, f"DROP DATABASE IF EXISTS `{name}`"))
    else:
        run_in_own_loop(lambda: _admin(kind, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of a new empty database of `kind`, dropped on exit (SQLite: a file in `folder`)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / unique_name()}.db"
        return
    name = unique_name()
    url = create_database(kind, name)
    try:
        yield url
    finally:
        drop_database(kind, name)


async def migrate_all(url: str) -> None:
    """Apply the three services' migrations to one database (they can share it)."""
    engine = create_engine(url)
    try:
        for script_location in SERVICE_MIGRATIONS.values():
            await migrate(engine, script_location)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Each engine in turn: sqlite, mariadb, postgresql."""
    kind = str(request.param)
    require_engine(kind)
    return kind


@pytest.fixture(scope="module")
def migrated_url(database_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own, shared by all three services, migrated to head."""
    with fresh_database(database_kind, tmp_path_factory.mktemp("db")) as url:
        run_in_own_loop(lambda: migrate_all(url))
        yield url


@pytest.fixture
async def db_engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database, in the test's event loop."""
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the module's database."""
    return session_factory(db_engine)
