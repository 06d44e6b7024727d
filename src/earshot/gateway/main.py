"""Entry point of the gateway: migrate, build adapters, serve until SIGTERM/SIGINT, close all."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import structlog
import uvicorn

from earshot.common.blobs import open_blob_store
from earshot.common.db import create_engine, migrate
from earshot.common.logging import configure_logging
from earshot.common.queue import open_queue
from earshot.common.serving import GracefulServer
from earshot.common.tokens import JwksVerifier, StaticKeyVerifier, TokenVerifier, shared_secret
from earshot.gateway.app import create_app
from earshot.gateway.settings import GatewaySettings

MIGRATIONS = "earshot.gateway:migrations"
_log = structlog.get_logger()


async def prepare(settings: GatewaySettings) -> None:
    """Apply the jobs database migrations (idempotent)."""
    engine = create_engine(settings.jobs_database_url)
    try:
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()


def build_verifier(settings: GatewaySettings, http_client: httpx.AsyncClient) -> TokenVerifier:
    """HS256 with the shared secret, or EdDSA/RS256 with auth's JWKS fetched and cached."""
    if settings.jwt_algorithm == "HS256":
        configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        return StaticKeyVerifier(
            shared_secret(settings, configured).encode(),
            algorithm="HS256",
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    return JwksVerifier(
        f"{settings.auth_url}/.well-known/jwks.json",
        http_client,
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache_seconds=settings.jwks_cache_seconds,
    )


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway until uvicorn receives SIGTERM or SIGINT."""
    await prepare(settings)
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.jobs_database_url)
        stack.push_async_callback(engine.dispose)
        queue = open_queue(
            settings.broker_url,
            poll_seconds=settings.queue_poll_seconds,
            lease_seconds=settings.queue_lease_seconds,
            max_deliveries=settings.queue_max_deliveries,
        )
        stack.push_async_callback(queue.close)
        blobs = open_blob_store(settings.storage_url)
        stack.push_async_callback(blobs.close)
        auth_client = httpx.AsyncClient(timeout=settings.auth_timeout_seconds)
        stack.push_async_callback(auth_client.aclose)
        app = create_app(
            settings,
            engine=engine,
            blobs=blobs,
            queue=queue,
            verifier=build_verifier(settings, auth_client),
            auth_client=auth_client,
        )
        config = uvicorn.Config(
            app,
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=30,
        )
        _log.info("gateway.listening", host=settings.gateway_host, port=settings.gateway_port)
        await GracefulServer(config).serve()
    _log.info("gateway.stopped")


def run(settings: GatewaySettings) -> None:
    """Blocking: serve the gateway on `gateway_host:gateway_port` until SIGTERM/SIGINT."""
    configure_logging(service="gateway", level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))
