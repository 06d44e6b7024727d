"""Migrations on SQLite, MariaDB and PostgreSQL: empty to head, again, shared, concurrent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth.models import Base as AuthBase
from earshot.common.db import create_engine, migrate
from earshot.gateway.models import Base as GatewayBase
from earshot.notifier.models import Base as NotifierBase
from tests.integration.conftest import (
    DATABASE_KINDS,
    SERVICE_MIGRATIONS,
    fresh_database,
    require_engine,
)

pytestmark = pytest.mark.integration

SERVICE_TABLES = {
    "auth": {"users"},
    "gateway": {"jobs", "outbox"},
    "notifier": {"notifications"},
}
SERVICE_MODELS = {"auth": AuthBase, "gateway": GatewayBase, "notifier": NotifierBase}


@pytest.fixture(params=DATABASE_KINDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database of each kind, dropped after the test."""
    require_engine(str(request.param))
    with fresh_database(str(request.param), tmp_path) as url:
        yield url


def head_of(script_location: str) -> str:
    config = Config()
    config.set_main_option("script_location", script_location)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def versions(engine: AsyncEngine) -> dict[str, str]:
    found = {}
    async with engine.connect() as connection:
        for service in SERVICE_MIGRATIONS:
            table = f"alembic_version_{service}"
            found[service] = (await connection.execute(text(f"SELECT * FROM {table}"))).scalar_one()
    return found


async def test_every_service_migrates_from_empty_to_head_twice_in_one_shared_database(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engine = create_engine(empty_url)
    try:
        # given an empty database, when all three services migrate into it, twice
        for _ in range(2):
            for script_location in SERVICE_MIGRATIONS.values():
                await migrate(engine, script_location)
        # then each service has its tables and its own version table, at its head
        tables = await table_names(engine)
        assert await versions(engine) == {
            service: head_of(location) for service, location in SERVICE_MIGRATIONS.items()
        }
    finally:
        await engine.dispose()
    for service, expected in SERVICE_TABLES.items():
        assert expected | {f"alembic_version_{service}"} <= tables
    # and a first migration prints no warning to the operator's console (MySQL's notes included)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _schema_diff(connection: Connection, metadata: MetaData) -> list[object]:
    # The database is shared: compare this service's tables only.
    def own(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name in metadata.tables

    context = MigrationContext.configure(connection, opts={"include_name": own})
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("service", sorted(SERVICE_MODELS))
async def test_the_migrated_schema_matches_the_models(db_engine: AsyncEngine, service: str) -> None:
    metadata = SERVICE_MODELS[service].metadata

    async with db_engine.connect() as connection:
        diff = await connection.run_sync(lambda c: _schema_diff(c, metadata))

    assert diff == []


async def test_replicas_migrating_at_once_all_succeed(empty_url: str) -> None:
    # given three processes starting together on one empty database
    engines = [create_engine(empty_url) for _ in range(3)]
    try:
        # when each migrates: one does the work, the others wait for it and find nothing to do
        await asyncio.gather(*(migrate(e, SERVICE_MIGRATIONS["gateway"]) for e in engines))
        # then the schema is there once
        assert {"jobs", "outbox"} <= await table_names(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
