"""The SQL-database port: an SQLAlchemy async engine chosen by URL, and Alembic migrations.

SQLite (embedded, `sqlite+aiosqlite:///PATH`), MySQL/MariaDB (`mysql+asyncmy://`) and PostgreSQL
(`postgresql+asyncpg://`) share one code path; each service owns one database and its migrations.
Whatever the engine, an unreachable server surfaces as `sqlalchemy.exc.OperationalError` within a
bounded time, so callers map one exception to "unavailable, retry later".
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, ExceptionContext, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.types import TypeDecorator, TypeEngine

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
CONNECT_TIMEOUT_SECONDS: Final = 5.0
QUERY_TIMEOUT_SECONDS: Final = 30.0
# Below MySQL's default wait_timeout (8 h) and the idle cut-off of most proxies and load balancers.
POOL_RECYCLE_SECONDS: Final = 1800
MIGRATION_LOCK_SECONDS: Final = 120.0
MYSQL_DIALECTS: Final = frozenset({"mysql", "mariadb"})
# The connect-time option of each driver whose whole connect earshot bounds.
CONNECT_TIMEOUT_OPTIONS: Final = {"asyncmy": "connect_timeout", "asyncpg": "timeout"}
# SQLSTATE classes meaning "the server cannot serve you now": connection exception, insufficient
# resources (too many connections), operator intervention (shutting down, starting up).
_UNAVAILABLE_SQLSTATES: Final = ("08", "53", "57P")
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class _DropIgnoredPrimaryKeyNames(logging.Filter):
    """Hide MySQL's note that a primary key's name is ignored (its primary key is always PRIMARY).

    The naming convention names primary keys for the engines that keep the name; asyncmy logs
    every server note as a warning, so each first migration printed one per table.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "ignored for PRIMARY key" not in record.getMessage()


_ASYNCMY_NOTE_FILTER: Final = _DropIgnoredPrimaryKeyNames()


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock of this service's database for too long."""


def service_metadata() -> MetaData:
    """Metadata for one service's tables, with constraint names stable across engines."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite hands back naive ones otherwise).

    MySQL/MariaDB get `DATETIME(6)`: their plain `DATETIME` drops microseconds, which would break
    newest-first ordering of rows created within one second.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Microsecond precision on MySQL/MariaDB, the zone-aware type elsewhere."""
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; a naive datetime is a bug and is refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column: use datetime.now(tz=UTC)")
        utc = value.astimezone(UTC)
        # MySQL DATETIME has no zone: say explicitly that it holds UTC rather than rely on the
        # driver dropping tzinfo.
        return utc.replace(tzinfo=None) if dialect.name in MYSQL_DIALECTS else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Load as an aware UTC datetime."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(
    url: str,
    *,
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
    query_timeout_seconds: float | None = QUERY_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An async engine for `url`; on a server, outages raise `OperationalError` within the bounds.

    Options given in the URL's query string (`?connect_timeout=…`) win over these defaults.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": POOL_RECYCLE_SECONDS}
    if backend in MYSQL_DIALECTS:
        logging.getLogger("asyncmy").addFilter(_ASYNCMY_NOTE_FILTER)  # once: filters are a set
        # PostgreSQL's default: no gap locks, so concurrent inserts into the same index range
        # (outbox, notifications) do not deadlock, and every engine sees the same anomalies.
        options["isolation_level"] = "READ COMMITTED"
    engine = create_async_engine(
        parsed,
        connect_args=_driver_options(parsed, connect_timeout_seconds, query_timeout_seconds),
        **options,
    )
    _report_outages_as_operational_errors(engine, connect_timeout_seconds)
    return engine


def _sqlite_engine(url: str) -> AsyncEngine:
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


def _driver_options(
    url: URL, connect_seconds: float, query_seconds: float | None
) -> dict[str, Any]:
    """Timeouts (and MySQL's character set) in each driver's words; the URL's query wins."""
    driver = url.get_driver_name()
    if driver == "asyncmy":
        wanted: dict[str, Any] = {
            "connect_timeout": connect_seconds,
            "read_timeout": query_seconds,
            "charset": "utf8mb4",
        }
    elif driver == "asyncpg":
        wanted = {"timeout": connect_seconds, "command_timeout": query_seconds}
    else:
        return {}
    for key, given in url.query.items():
        if key in wanted:
            # Query values are text; the drivers want numbers for their timeouts.
            wanted[key] = str(given) if key == "charset" else float(str(given))
    return {key: value for key, value in wanted.items() if value is not None}


def _report_outages_as_operational_errors(engine: AsyncEngine, connect_seconds: float) -> None:
    """Make "the server is unreachable" one exception type, raised within bounded time.

    asyncpg lets `OSError`/`TimeoutError` out of `connect` and reports "shutting down" or "too many
    connections" as plain database errors; SQLAlchemy passes those on unchanged or as a generic
    `DBAPIError`. Callers should not need to know which driver they run on to answer 503.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        option = CONNECT_TIMEOUT_OPTIONS.get(dialect.driver)
        if option is not None:
            # asyncmy's connect_timeout covers the TCP connect only, not a server that accepts
            # and then says nothing; `async_creator_fn` is the hook `async_creator` is built on.
            seconds = float(cparams.get(option, connect_seconds))
            driver_connect = importlib.import_module(dialect.driver).connect
            cparams["async_creator_fn"] = _within(seconds, driver_connect)
        dbapi = dialect.loaded_dbapi
        try:
            return dbapi.connect(*cargs, **cparams)
        except OSError as exc:  # refused, unreachable, timed out (TimeoutError is an OSError)
            raise dbapi.OperationalError(f"cannot connect to the database: {exc!r}") from exc
        except dbapi.Error as exc:
            if _is_unavailable(exc):
                raise dbapi.OperationalError(f"the database refused the connection: {exc}") from exc
            raise

    @event.listens_for(engine.sync_engine, "handle_error")
    def _outage(context: ExceptionContext) -> BaseException | None:
        if isinstance(context.sqlalchemy_exception, OperationalError | InterfaceError):
            return None
        original = context.original_exception
        if not (isinstance(original, OSError) or _is_unavailable(original)):
            return None
        context.is_disconnect = True  # the pooled connection is unusable: drop it
        statement, parameters = context.statement, context.parameters
        return OperationalError(statement, parameters, original, connection_invalidated=True)


def _within(seconds: float, connect: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def connect_within(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(connect(*args, **kwargs), seconds)

    return connect_within


def _is_unavailable(error: BaseException) -> bool:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _service_name(script_location: str) -> str:
    return script_location.split(":", 1)[0].rsplit(".", 1)[-1]


def _alembic_config(script_location: str, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.attributes["connection"] = connection
    # One version table per service, so services may share one database (one schema on MySQL).
    config.attributes["version_table"] = f"alembic_version_{_service_name(script_location)}"
    return config


async def migrate(engine: AsyncEngine, script_location: str, revision: str = "head") -> None:
    """Apply a service's migrations (`script_location` like `earshot.auth:migrations`).

    Safe to run from several processes at once (replicas starting together): one migrates while
    the others wait for its lock, then find nothing to do.
    """

    def upgrade(connection: Connection) -> None:
        service = _service_name(script_location)
        with _migration_lock(connection, service):
            command.upgrade(_alembic_config(script_location, connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


@contextmanager
def _migration_lock(connection: Connection, service: str) -> Iterator[None]:
    """Hold the migration lock of `service` in this database until the migration is done."""
    scope = f"{connection.engine.url.database}:{service}".encode()
    digest = hashlib.sha256(scope).digest()
    if connection.dialect.name == "postgresql":
        # Released by the commit that also makes the (transactional) DDL visible.
        key = int.from_bytes(digest[:8], "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield
    elif connection.dialect.name in MYSQL_DIALECTS:
        # A session lock: MySQL DDL commits implicitly, so a transaction cannot hold it.
        name = f"earshot-migrate-{digest.hex()[:40]}"  # lock names are 64 characters at most
        _get_mysql_lock(connection, name)
        try:
            yield
        finally:
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    else:
        # SQLite: take the write lock now (a second migrator waits for the busy timeout), which
        # also makes the DDL transactional; the driver leaves DDL outside transactions otherwise.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield


def _get_mysql_lock(connection: Connection, name: str) -> None:
    # Short waits in a loop: one long GET_LOCK would trip the driver's read timeout.
    wait_seconds = 5
    for _ in range(int(MIGRATION_LOCK_SECONDS // wait_seconds)):
        got = connection.scalar(
            text("SELECT GET_LOCK(:name, :seconds)"), {"name": name, "seconds": wait_seconds}
        )
        if got == 1:
            return
    raise MigrationLockTimeout(f"another process has been migrating for {MIGRATION_LOCK_SECONDS}s")


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
