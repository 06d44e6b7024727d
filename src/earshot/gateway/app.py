"""Build the gateway app from injected adapters; its lifespan runs the background loops."""

from __future__ import annotations

from uuid import uuid4

import httpx
import structlog
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from earshot.common.blobs import BlobStore
from earshot.common.db import session_factory
from earshot.common.health import health_router
from earshot.common.problems import install_problem_handlers
from earshot.common.queue import MessageQueue
from earshot.common.tokens import TokenVerifier
from earshot.gateway import routes_admin, routes_api, routes_course
from earshot.gateway.background import running_in_background
from earshot.gateway.deps import Gateway
from earshot.gateway.errors import install_gateway_handlers
from earshot.gateway.metrics import GatewayMetrics
from earshot.gateway.outbox import OutboxRelay
from earshot.gateway.settings import GatewaySettings

DESCRIPTION = """Convert videos to audio. Sign in at `POST /api/v1/auth/token`, upload with
`POST /api/v1/jobs`, follow the job at `GET /api/v1/jobs/{id}`, download its audio from
`GET /api/v1/jobs/{id}/audio`. Errors are RFC 9457 `application/problem+json`. The course's
`/login`, `/upload` and `/download` routes keep their plain-text answers."""


def create_app(
    settings: GatewaySettings,
    *,
    engine: AsyncEngine,
    blobs: BlobStore,
    queue: MessageQueue,
    verifier: TokenVerifier,
    auth_client: httpx.AsyncClient,
) -> FastAPI:
    """The gateway app; the caller owns (and closes) the adapters it passes in."""
    sessions = session_factory(engine)
    relay = OutboxRelay(
        sessions,
        queue,
        poll_seconds=settings.outbox_poll_seconds,
        backoff_max_seconds=settings.outbox_backoff_max_seconds,
        retention_seconds=settings.outbox_retention_seconds,
        publish_timeout_seconds=settings.outbox_publish_timeout_seconds,
    )
    gateway = Gateway(
        settings=settings,
        sessions=sessions,
        blobs=blobs,
        queue=queue,
        verifier=verifier,
        auth_client=auth_client,
        relay=relay,
        metrics=GatewayMetrics(),
    )
    app = FastAPI(
        title="earshot",
        version="1",
        description=DESCRIPTION,
        lifespan=lambda _app: running_in_background(gateway),
    )
    app.state.gateway = gateway
    _install_routes(app, gateway, engine)
    return app


def _install_routes(app: FastAPI, gateway: Gateway, engine: AsyncEngine) -> None:
    install_problem_handlers(app)
    install_gateway_handlers(app, retry_after_seconds=gateway.settings.db_retry_after_seconds)
    app.include_router(routes_course.router)
    app.include_router(routes_api.router)
    app.include_router(routes_admin.router)
    app.include_router(_health(gateway, engine))
    app.include_router(gateway.metrics.router())
    app.add_middleware(RequestIdMiddleware)


def _health(gateway: Gateway, engine: AsyncEngine) -> APIRouter:
    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return health_router(
        {"database": database, "queue": gateway.queue.check, "storage": gateway.blobs.check}
    )


class RequestIdMiddleware:
    """Binds a `request_id` to every log line of a request and echoes it as `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming.isprintable() and incoming else uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
