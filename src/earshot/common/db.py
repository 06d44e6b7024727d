"""The SQL-database port: an SQLAlchemy async engine chosen by URL, and Alembic migrations.

SQLite (embedded, `sqlite+aiosqlite:///PATH`), MySQL/MariaDB (`mysql+asyncmy://`) and PostgreSQL
(`postgresql+asyncpg://`) share one code path; each service owns one database and its migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 10_000
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """Metadata for one service's tables, with constraint names stable across engines."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; a naive datetime is a bug and is refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column: use datetime.now(tz=UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Load as an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
