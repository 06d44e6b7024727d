"""The jobs database: migrations match the models, and re-applying them is harmless."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.gateway.main import prepare
from earshot.gateway.models import Base
from earshot.gateway.settings import GatewaySettings


async def test_migrations_match_the_models(engine: AsyncEngine, settings: GatewaySettings) -> None:
    await prepare(settings)  # a second run changes nothing

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={"include_name": lambda name, kind, _: not str(name).startswith("alembic_")},
        )
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


def test_settings_default_to_embedded_files(settings: GatewaySettings) -> None:
    assert settings.jobs_database_url == f"sqlite+aiosqlite:///{settings.data_dir / 'jobs.db'}"
    assert settings.gateway_port == 8080
    assert all(field.description for field in GatewaySettings.model_fields.values())
