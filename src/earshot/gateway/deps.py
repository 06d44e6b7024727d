"""What routes receive: the gateway's adapters and the caller's verified claims (`Annotated`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.blobs import BlobStore
from earshot.common.problems import Unauthorized
from earshot.common.queue import MessageQueue
from earshot.common.tokens import Claims, KeySetUnavailable, TokenError, TokenVerifier
from earshot.gateway.errors import PlainTextProblem
from earshot.gateway.jobs import Owner
from earshot.gateway.metrics import GatewayMetrics
from earshot.gateway.outbox import OutboxRelay
from earshot.gateway.settings import GatewaySettings

COURSE_UNAUTHORIZED = "not authorized"


@dataclass(frozen=True, slots=True)
class Gateway:
    """Everything a request may use, built once by `create_app`."""

    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    queue: MessageQueue
    verifier: TokenVerifier
    auth_client: httpx.AsyncClient
    relay: OutboxRelay
    metrics: GatewayMetrics


def get_gateway(request: Request) -> Gateway:
    """The gateway context stored on the app."""
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

# The docs' "Authorize" button signs in through the token route; the scheme only reads the header.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _verify(gateway: Gateway, token: str | None) -> Claims:
    if not token:
        raise TokenError("missing bearer token")
    try:
        return await gateway.verifier.verify(token)
    except TokenError:
        raise
    except Exception as exc:  # a verifier bug must not turn a bad token into a 500
        raise TokenError("token cannot be verified") from exc


async def api_claims(gateway: GatewayDep, token: Annotated[str | None, Depends(_bearer)]) -> Claims:
    """The caller's claims on `/api/v1`; 401 problem+json otherwise."""
    try:
        return await _verify(gateway, token)
    except KeySetUnavailable:
        raise
    except TokenError as exc:
        raise Unauthorized(str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def course_claims(gateway: GatewayDep, request: Request) -> Claims:
    """The caller's claims on the course routes; 401 `not authorized` as plain text otherwise."""
    try:
        return await _verify(gateway, bearer_token(request))
    except KeySetUnavailable:
        raise
    except TokenError as exc:
        raise PlainTextProblem(COURSE_UNAUTHORIZED, status=401) from exc


def owner_of(claims: Claims) -> Owner:
    """The job owner named by a token."""
    return Owner(user_id=claims.sub, username=claims.username)


ApiClaims = Annotated[Claims, Depends(api_claims)]
CourseClaims = Annotated[Claims, Depends(course_claims)]
