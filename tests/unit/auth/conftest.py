"""Fixtures: the real auth app over a real SQLite file in tmp_path, called through ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth.app import create_app
from earshot.auth.keys import SigningKey, load_signing_key
from earshot.auth.models import apply_migrations
from earshot.auth.passwords import Passwords
from earshot.auth.settings import AuthSettings
from earshot.auth.users import create_user
from earshot.common.db import create_engine, session_factory

# Cheap argon2id parameters keep the suite fast; the production defaults get their own test.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 256, "argon2_parallelism": 1}
PASSWORD = "correct horse battery"

MakeSettings = Callable[..., AuthSettings]


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    """Settings on tmp_path, ignoring the caller's environment and .env; overrides as keywords."""

    def make(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {"data_dir": tmp_path, **FAST_ARGON2, **overrides}
        return AuthSettings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> AuthSettings:
    return make_settings()


@pytest.fixture
async def engine(settings: AuthSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.auth_database_url)
    await apply_migrations(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def signing_key(settings: AuthSettings) -> SigningKey:
    return load_signing_key(settings)


@pytest.fixture
def passwords(settings: AuthSettings) -> Passwords:
    return Passwords.from_settings(settings)


@pytest.fixture
def app(
    settings: AuthSettings, engine: AsyncEngine, signing_key: SigningKey, passwords: Passwords
) -> FastAPI:
    return create_app(settings, engine=engine, signing_key=signing_key, passwords=passwords)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        yield client


AddUser = Callable[..., Any]


@pytest.fixture
def add_user(engine: AsyncEngine, passwords: Passwords) -> AddUser:
    """Create a user straight in the database: `await add_user(email, password=..., admin=...)`."""

    async def add(email: str, *, password: str = PASSWORD, admin: bool = False) -> Any:
        async with session_factory(engine)() as session:
            return await create_user(
                session, email=email, password=password, is_admin=admin, passwords=passwords
            )

    return add
