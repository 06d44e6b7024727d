"""The users repository: argon2id hashes, rehashing, the admin seed, the CLI's `add_user`."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Literal

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from earshot.auth.app import create_app
from earshot.auth.keys import SigningKey
from earshot.auth.models import User
from earshot.auth.passwords import Passwords, WeakPassword
from earshot.auth.settings import AuthSettings
from earshot.auth.users import (
    InvalidEmail,
    UserExists,
    add_user,
    authenticate,
    create_user,
    ensure_admin,
)
from earshot.common.db import session_factory
from earshot.common.settings import SettingsError

from .conftest import PASSWORD, AddUser, MakeSettings


async def _stored(engine: AsyncEngine, email: str) -> User:
    async with session_factory(engine)() as session:
        user = (await session.scalars(select(User).where(User.email == email))).one()
    return user


async def test_passwords_are_stored_as_argon2id_with_the_default_parameters(
    engine: AsyncEngine,
) -> None:
    async with session_factory(engine)() as session:
        user = await create_user(
            session, email="ada@example.com", password=PASSWORD, is_admin=False
        )
    stored = await _stored(engine, "ada@example.com")
    assert stored.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored.password_hash
    assert stored.id == user.id and len(stored.id) == 36
    assert stored.created_at.utcoffset() == timedelta(0)  # aware and UTC, even on SQLite


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    settings: AuthSettings, engine: AsyncEngine, signing_key: SigningKey, add_user: AddUser
) -> None:
    # given a user whose hash was made with cheaper parameters than today's
    await add_user("ada@example.com")
    old_hash = (await _stored(engine, "ada@example.com")).password_hash
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=512, parallelism=1))
    app = create_app(settings, engine=engine, signing_key=signing_key, passwords=stronger)
    # when they log in
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await c.post("/login", auth=("ada@example.com", PASSWORD))).status_code == 200
    # then the stored hash uses the new parameters and still matches
    new_hash = (await _stored(engine, "ada@example.com")).password_hash
    assert new_hash != old_hash and "m=512,t=2,p=1" in new_hash
    assert await stronger.verify(new_hash, PASSWORD)


class CountingHasher(PasswordHasher):
    """A hasher that counts verifications."""

    verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        CountingHasher.verifications += 1
        return super().verify(hash, password)


async def test_an_unknown_user_costs_a_full_password_verification(engine: AsyncEngine) -> None:
    passwords = Passwords(CountingHasher(time_cost=1, memory_cost=256, parallelism=1))
    async with session_factory(engine)() as session:
        await create_user(
            session, email="ada@example.com", password=PASSWORD, is_admin=False, passwords=passwords
        )
        CountingHasher.verifications = 0
        unknown = await authenticate(
            session, email="nobody@example.com", password=PASSWORD, passwords=passwords
        )
        wrong = await authenticate(
            session, email="ada@example.com", password="not it at all", passwords=passwords
        )
    assert unknown is None and wrong is None
    assert CountingHasher.verifications == 2


async def test_creating_a_taken_email_raises_user_exists(add_user: AddUser) -> None:
    await add_user("ada@example.com")
    with pytest.raises(UserExists, match=r"ada@example\.com already exists"):
        await add_user("  ADA@example.com")


async def test_short_passwords_are_refused_with_a_clear_message(add_user: AddUser) -> None:
    with pytest.raises(WeakPassword, match="at least 8 characters"):
        await add_user("ada@example.com", password="short")


async def test_ensure_admin_generates_a_password_once(settings: AuthSettings) -> None:
    # given an empty users table, when the admin is ensured twice
    password = await ensure_admin(settings)
    again = await ensure_admin(settings)
    # then the first call created the admin with a strong generated password, the second nothing
    assert password is not None and len(password) >= 20
    assert again is None
    engine_users = await _all_users(settings)
    assert [(u.email, u.is_admin) for u in engine_users] == [("admin@earshot.local", True)]


async def _all_users(settings: AuthSettings) -> list[User]:
    from earshot.common.db import create_engine

    engine = create_engine(settings.auth_database_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(User))).all())
    finally:
        await engine.dispose()


async def test_ensure_admin_uses_the_configured_password(
    make_settings: MakeSettings, signing_key: SigningKey
) -> None:
    settings = make_settings(admin_email="Root@Example.com", admin_password="a configured one")
    assert await ensure_admin(settings) is None
    (admin,) = await _all_users(settings)
    assert admin.email == "root@example.com" and admin.is_admin
    passwords = Passwords.from_settings(settings)
    assert await passwords.verify(admin.password_hash, "a configured one")


async def test_ensure_admin_does_nothing_when_users_exist(
    settings: AuthSettings, add_user: AddUser
) -> None:
    await add_user("ada@example.com")
    assert await ensure_admin(settings) is None
    assert [u.email for u in await _all_users(settings)] == ["ada@example.com"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"env": "production", "admin_password": "admin"}, "EARSHOT_ADMIN_PASSWORD must be set"),
        ({"admin_password": "short"}, "EARSHOT_ADMIN_PASSWORD: the password must be at least 8"),
    ],
)
async def test_ensure_admin_refuses_bad_configured_passwords(
    make_settings: MakeSettings, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        await ensure_admin(make_settings(**overrides))


async def test_add_user_for_the_cli(settings: AuthSettings) -> None:
    user = await add_user(settings, email=" Bob@Example.com ", password=PASSWORD, is_admin=True)
    assert user.email == "bob@example.com" and user.is_admin
    with pytest.raises(UserExists):
        await add_user(settings, email="bob@example.com", password=PASSWORD, is_admin=False)
    with pytest.raises(InvalidEmail, match="not-an-email"):
        await add_user(settings, email="not-an-email", password=PASSWORD, is_admin=False)
    with pytest.raises(WeakPassword):
        await add_user(settings, email="carol@example.com", password="1234", is_admin=False)


class SlowHasher(PasswordHasher):
    """A hasher that records how many verifications run at the same time."""

    running = 0
    peak = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        SlowHasher.running += 1
        SlowHasher.peak = max(SlowHasher.peak, SlowHasher.running)
        try:
            time.sleep(0.02)
            return super().verify(hash, password)
        finally:
            SlowHasher.running -= 1


async def test_only_a_few_hashes_run_at_once() -> None:
    passwords = Passwords(
        SlowHasher(time_cost=1, memory_cost=256, parallelism=1), max_concurrency=2
    )
    stored = await passwords.hash(PASSWORD)
    results = await asyncio.gather(*(passwords.verify(stored, PASSWORD) for _ in range(8)))
    assert all(results)
    assert SlowHasher.peak == 2
