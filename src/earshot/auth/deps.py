"""What routes depend on, as readable `Annotated` aliases over the services `create_app` wired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import async_sessionmaker

from earshot.auth.issuer import TokenIssuer
from earshot.auth.keys import SigningKey
from earshot.auth.passwords import Passwords
from earshot.auth.ratelimit import LoginLimiter, Network, client_address
from earshot.auth.settings import AuthSettings
from earshot.common.db import AsyncSession
from earshot.common.problems import Forbidden, Unauthorized
from earshot.common.tokens import Claims, TokenError, TokenVerifier

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="earshot"'}


@dataclass(frozen=True)
class AuthServices:
    """Everything the auth routes use, built once by `create_app`."""

    settings: AuthSettings
    sessions: async_sessionmaker[AsyncSession]
    passwords: Passwords
    signing_key: SigningKey
    issuer: TokenIssuer
    verifier: TokenVerifier
    limiter: LoginLimiter
    trusted_proxies: tuple[Network, ...]


def get_services(request: Request) -> AuthServices:
    """The services of the app serving this request."""
    services: AuthServices = request.app.state.services
    return services


Services = Annotated[AuthServices, Depends(get_services)]


async def get_session(services: Services) -> AsyncIterator[AsyncSession]:
    """A database session for one request."""
    async with services.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def get_client(request: Request, services: Services) -> str:
    """The client's address (behind trusted proxies, from X-Forwarded-For)."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    return client_address(peer, forwarded, trusted=services.trusted_proxies)


Client = Annotated[str, Depends(get_client)]

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/token.")


async def get_claims(
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    """The caller's verified token claims; 401 problem without a valid Bearer token."""
    if credentials is None:
        raise Unauthorized("a Bearer access token is required", headers=BEARER_CHALLENGE)
    try:
        return await services.verifier.verify(credentials.credentials)
    except TokenError as exc:
        raise Unauthorized(str(exc), headers=BEARER_CHALLENGE) from exc


CurrentClaims = Annotated[Claims, Depends(get_claims)]


async def get_admin(claims: CurrentClaims) -> Claims:
    """The caller's claims when they are an admin; 403 problem otherwise."""
    if not claims.admin:
        raise Forbidden("this needs an admin account")
    return claims


Admin = Annotated[Claims, Depends(get_admin)]
