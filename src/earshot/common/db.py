"""The SQL-database port: an SQLAlchemy async engine chosen by URL, and Alembic migrations.

SQLite (embedded, `sqlite+aiosqlite:///PATH`), MySQL/MariaDB (`mysql+asyncmy://`) and PostgreSQL
(`postgresql+asyncpg://`) share one code path; each service owns one database and its migrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_recycle=1800)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(script_location: str, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["connection"] = connection
    # One version table per service, so services may share one database (one schema on MySQL).
    service = script_location.split(":", 1)[0].rsplit(".", 1)[-1]
    config.attributes["version_table"] = f"alembic_version_{service}"
    return config


async def migrate(engine: AsyncEngine, script_location: str, revision: str = "head") -> None:
    """Apply a service's migrations (`script_location` like `earshot.auth:migrations`)."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(script_location, connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


def run_migrations(context: EnvironmentContext | Any, target_metadata: MetaData) -> None:
    """Body of every service's `migrations/env.py`: run on the connection `migrate` passed in.

    `context` is `alembic.context`, a module proxying an `EnvironmentContext` (hence `Any`).
    """
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table=context.config.attributes.get("version_table", "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()
