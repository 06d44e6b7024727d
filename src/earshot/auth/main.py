"""Entry point of the auth service: migrate, load the signing key, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

import structlog
import uvicorn

from earshot.auth.app import create_app
from earshot.auth.keys import load_signing_key
from earshot.auth.models import apply_migrations
from earshot.auth.settings import AuthSettings
from earshot.common.db import create_engine
from earshot.common.logging import configure_logging
from earshot.common.serving import GracefulServer
from earshot.common.settings import SettingsError

log = structlog.get_logger()


async def prepare(settings: AuthSettings) -> None:
    """Apply the auth database migrations (idempotent)."""
    engine = create_engine(settings.auth_database_url)
    try:
        await apply_migrations(engine)
    finally:
        await engine.dispose()


async def serve(settings: AuthSettings) -> None:
    """Run the auth HTTP service until uvicorn receives SIGTERM or SIGINT."""
    signing_key = load_signing_key(settings)  # a refused key stops us before touching anything
    await prepare(settings)
    engine = create_engine(settings.auth_database_url)
    try:
        app = create_app(settings, engine=engine, signing_key=signing_key)
        config = uvicorn.Config(
            app,
            host=settings.auth_host,
            port=settings.auth_port,
            log_config=None,
            lifespan="on",
        )
        log.info("auth_listening", host=settings.auth_host, port=settings.auth_port)
        await GracefulServer(config).serve()
    finally:
        await engine.dispose()
        log.info("auth_stopped")


def run(settings: AuthSettings) -> None:
    """Blocking: serve auth on `auth_host:auth_port` until SIGTERM/SIGINT, then close everything.

    Unusable settings (a production key missing) exit with status 1 and one clear line.
    """
    configure_logging(service="auth", level=settings.log_level, fmt=settings.log_format)
    try:
        asyncio.run(serve(settings))
    except SettingsError as exc:
        raise SystemExit(f"earshot auth: {exc}") from None
