"""The auth HTTP app, wired from injected adapters so tests build it with their own."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

import earshot
from earshot.auth import routes, routes_api
from earshot.auth.deps import AuthServices
from earshot.auth.issuer import TokenIssuer
from earshot.auth.keys import SigningKey
from earshot.auth.passwords import Passwords
from earshot.auth.ratelimit import LoginLimiter, parse_networks
from earshot.auth.settings import AuthSettings
from earshot.common.db import session_factory
from earshot.common.health import health_router
from earshot.common.problems import install_problem_handlers, problem_response

_log = structlog.get_logger()


def create_app(
    settings: AuthSettings,
    *,
    engine: AsyncEngine,
    signing_key: SigningKey,
    passwords: Passwords | None = None,
    limiter: LoginLimiter | None = None,
) -> FastAPI:
    """The auth app over `engine` (migrated by the caller), signing with `signing_key`."""
    app = FastAPI(
        title="earshot auth",
        version=earshot.__version__,
        summary="Users and access tokens for earshot (internal; the gateway proxies logins).",
    )
    app.state.services = AuthServices(
        settings=settings,
        sessions=session_factory(engine),
        passwords=passwords or Passwords.from_settings(settings),
        signing_key=signing_key,
        issuer=_issuer(settings, signing_key),
        verifier=signing_key.verifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        limiter=limiter or LoginLimiter.from_settings(settings),
        trusted_proxies=parse_networks(settings.auth_trusted_proxies),
    )

    async def database_ready() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    install_problem_handlers(app)
    _install_outage_handler(app)
    app.include_router(health_router({"database": database_ready}))
    app.include_router(routes.router)
    app.include_router(routes_api.router)
    app.include_router(routes_api.jwks_router)
    return app


def _issuer(settings: AuthSettings, signing_key: SigningKey) -> TokenIssuer:
    return TokenIssuer(
        signing_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )


DATABASE_RETRY_AFTER_SECONDS = 5
_PLAIN_TEXT_PATHS = frozenset({"/login", "/validate"})


def _install_outage_handler(app: FastAPI) -> None:
    """A database outage is a 503 with `Retry-After` (plain text on course routes), not a 500."""

    async def on_database_down(request: Request, exc: Exception) -> Response:
        _log.error("database.unavailable", error=str(exc).splitlines()[0][:300])
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
        detail = "the users database is unavailable, retry later"
        if request.url.path in _PLAIN_TEXT_PATHS:
            return PlainTextResponse(detail, status_code=503, headers=headers)
        return problem_response(
            request, status=503, title="Service Unavailable", detail=detail, headers=headers
        )

    for error in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(error, on_database_down)
