"""The users repository: create, authenticate, seed the admin; the only code that writes users."""

from __future__ import annotations

import structlog
from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from earshot.auth.models import User, apply_migrations
from earshot.auth.passwords import (
    MAX_PASSWORD_CHARS,
    Passwords,
    WeakPassword,
    check_password,
    generate_password,
)
from earshot.auth.settings import AuthSettings
from earshot.common.db import AsyncSession, create_engine, session_factory
from earshot.common.settings import PLACEHOLDER_SECRETS, SettingsError

log = structlog.get_logger()
_EMAIL = TypeAdapter(EmailStr)


class UserExists(Exception):
    """A user with this email already exists."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email} already exists")
        self.email = email


class InvalidEmail(ValueError):
    """An email address that is not acceptable for a new user."""


def normalise_email(email: str) -> str:
    """The form emails are stored and looked up in: trimmed, lower case."""
    return email.strip().lower()


def parse_email(value: str) -> str:
    """A user-supplied email, validated (pydantic `EmailStr`) and normalised."""
    try:
        return normalise_email(_EMAIL.validate_python(value.strip()))
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"] if exc.errors() else "not a valid email address"
        raise InvalidEmail(f"{value!r}: {reason}") from exc


async def find_user(session: AsyncSession, email: str) -> User | None:
    """The user with this email, if any."""
    found = await session.scalars(select(User).where(User.email == normalise_email(email)))
    return found.first()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    is_admin: bool,
    passwords: Passwords | None = None,
    min_password_length: int = 8,
) -> User:
    """Create and commit a user; `UserExists` if the email is taken, `WeakPassword` if too short."""
    check_password(password, min_length=min_password_length)
    hashing = passwords or Passwords()
    user = User(
        email=normalise_email(email),
        password_hash=await hashing.hash(password),
        is_admin=is_admin,
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise UserExists(user.email) from exc
    log.info("user_created", user_id=user.id, is_admin=is_admin)
    return user


async def authenticate(
    session: AsyncSession, *, email: str, password: str, passwords: Passwords
) -> User | None:
    """The user when the password matches, else None; the hash is upgraded when its cost changed."""
    user = await find_user(session, email)
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    if not await passwords.verify(user.password_hash if user else None, password):
        return None
    assert user is not None  # verify() never matches without a stored hash
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
        await session.commit()
        log.info("password_rehashed", user_id=user.id)
    return user


async def count_users(session: AsyncSession) -> int:
    """How many users exist."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def ensure_admin(settings: AuthSettings) -> str | None:
    """Create the admin when there are no users; return the password only if it was generated."""
    configured = (
        settings.admin_password.get_secret_value() if settings.admin_password else ""
    ) or None
    if configured is not None and configured.strip().lower() in PLACEHOLDER_SECRETS:
        settings.require_secret("admin_password", configured)
    engine = create_engine(settings.auth_database_url)
    try:
        await apply_migrations(engine)
        async with session_factory(engine)() as session:
            if await count_users(session) > 0:
                return None
            # End the read before writing: on SQLite two readers that both upgrade to writers
            # deadlock ("database is locked" at once); a fresh write transaction waits its turn.
            await session.rollback()
            password = configured or generate_password()
            try:
                await create_user(
                    session,
                    email=settings.admin_email,
                    password=password,
                    is_admin=True,
                    passwords=Passwords.from_settings(settings),
                    min_password_length=settings.password_min_length,
                )
            except UserExists:
                return None  # another process seeded it first
            except WeakPassword as exc:
                raise SettingsError(f"EARSHOT_ADMIN_PASSWORD: {exc}") from exc
    finally:
        await engine.dispose()
    return None if configured else password


async def add_user(settings: AuthSettings, *, email: str, password: str, is_admin: bool) -> User:
    """Create a user from the command line; `InvalidEmail`, `WeakPassword` or `UserExists`."""
    address = parse_email(email)
    engine = create_engine(settings.auth_database_url)
    try:
        await apply_migrations(engine)
        async with session_factory(engine)() as session:
            return await create_user(
                session,
                email=address,
                password=password,
                is_admin=is_admin,
                passwords=Passwords.from_settings(settings),
                min_password_length=settings.password_min_length,
            )
    finally:
        await engine.dispose()
