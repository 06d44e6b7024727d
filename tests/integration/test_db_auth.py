"""The users repository on SQLite, MariaDB and PostgreSQL, through its real functions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.auth.models import User
from earshot.auth.passwords import Passwords
from earshot.auth.settings import AuthSettings
from earshot.auth.users import UserExists, authenticate, create_user, ensure_admin
from earshot.common.db import create_engine, session_factory
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.integration

FAST_ARGON2: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_kib": 256}
PASSWORD = "correct horse battery"


@pytest.fixture
def passwords() -> Passwords:
    return Passwords.from_settings(AuthSettings(_env_file=None, **FAST_ARGON2))


def an_email() -> str:
    return f"ada-{uuid.uuid4().hex[:8]}@example.com"


async def add(sessions: async_sessionmaker[AsyncSession], email: str, passwords: Passwords) -> User:
    async with sessions() as session:
        return await create_user(
            session, email=email, password=PASSWORD, is_admin=False, passwords=passwords
        )


async def users_with(sessions: async_sessionmaker[AsyncSession], email: str) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(User).where(User.email == email)
        return int(await session.scalar(query) or 0)


async def test_a_user_signs_in_with_any_case_of_their_email(
    db_sessions: async_sessionmaker[AsyncSession], passwords: Passwords
) -> None:
    email = an_email()
    created = await add(db_sessions, f"  {email.upper()} ", passwords)

    async with db_sessions() as session:
        found = await authenticate(session, email=email, password=PASSWORD, passwords=passwords)
        wrong = await authenticate(session, email=email, password="nope-nope", passwords=passwords)
        nobody = await authenticate(
            session, email=an_email(), password=PASSWORD, passwords=passwords
        )

    assert created.email == email
    assert found is not None and found.id == created.id and not found.is_admin
    assert found.created_at.utcoffset() == timedelta(0)
    assert found.created_at == created.created_at  # microseconds survive (DATETIME(6) on MySQL)
    assert wrong is None and nobody is None


async def test_an_email_is_taken_whatever_its_case(
    db_sessions: async_sessionmaker[AsyncSession], passwords: Passwords
) -> None:
    email = an_email()
    await add(db_sessions, email, passwords)

    with pytest.raises(UserExists):
        await add(db_sessions, email.upper(), passwords)
    assert await users_with(db_sessions, email) == 1


async def test_two_signups_with_one_email_at_once_create_one_user(
    db_sessions: async_sessionmaker[AsyncSession], passwords: Passwords
) -> None:
    email = an_email()

    results = await asyncio.gather(
        add(db_sessions, email, passwords),
        add(db_sessions, email, passwords),
        return_exceptions=True,
    )

    assert sorted(type(result).__name__ for result in results) == ["User", "UserExists"]
    assert await users_with(db_sessions, email) == 1


async def test_the_admin_is_seeded_once_even_by_two_processes_at_once(
    database_kind: str, tmp_path: Path
) -> None:
    with fresh_database(database_kind, tmp_path) as url:
        settings = AuthSettings(
            _env_file=None, data_dir=tmp_path, auth_database_url=url, **FAST_ARGON2
        )
        # given an empty database, when two starts seed the admin concurrently, then a third
        first, second = await asyncio.gather(ensure_admin(settings), ensure_admin(settings))
        third = await ensure_admin(settings)

        # then exactly one generated a password, and it signs the admin in
        generated = [password for password in (first, second) if password is not None]
        assert len(generated) == 1 and third is None
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                admins = list(await session.scalars(select(User)))
                signed_in = await authenticate(
                    session,
                    email=settings.admin_email,
                    password=generated[0],
                    passwords=Passwords.from_settings(settings),
                )
        finally:
            await engine.dispose()
    assert [(user.email, user.is_admin) for user in admins] == [(settings.admin_email, True)]
    assert signed_in is not None and signed_in.is_admin
