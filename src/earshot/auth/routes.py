"""The course's routes, byte-compatible: `POST /login` (Basic → raw JWT) and `POST /validate`."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from earshot.auth.deps import Client, Services, Session
from earshot.auth.login import LoginFailed, LoginThrottled, sign_in
from earshot.common.tokens import TokenError

router = APIRouter(tags=["course"])
NO_STORE = {"Cache-Control": "no-store"}


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) from an HTTP Basic `Authorization` header; None if absent or unreadable."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode()
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")  # RFC 7617's historical default
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def parse_bearer(authorization: str | None) -> str | None:
    """The token of a `Bearer` `Authorization` header; None if absent."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@router.post(
    "/login",
    response_class=PlainTextResponse,
    summary="Course login: HTTP Basic in, the raw JWT out as text",
    responses={401: {"description": "`missing credentials` or `invalid credentials`"}},
)
async def login(request: Request, services: Services, session: Session, client: Client) -> Response:
    """Sign in with HTTP Basic (email:password); the body is the JWT (course-compatible)."""
    credentials = parse_basic(request.headers.get("authorization"))
    if credentials is None:
        return _plain("missing credentials", 401)
    email, password = credentials
    try:
        issued = await sign_in(services, session, email=email, password=password, client=client)
    except LoginThrottled as exc:
        return _plain("too many attempts", 429, {"Retry-After": str(exc.retry_after)})
    except LoginFailed:
        return _plain("invalid credentials", 401)
    return _plain(issued.token, 200, NO_STORE)


@router.post(
    "/validate",
    summary="Course token check: Bearer in, the claims out as JSON",
    responses={403: {"description": "`not authorized`"}},
)
async def validate(request: Request, services: Services) -> Response:
    """The token's claims (200), or 403 `not authorized` for a missing, bad or expired token."""
    token = parse_bearer(request.headers.get("authorization"))
    if token is None:
        return _plain("not authorized", 403)
    try:
        claims = await services.verifier.verify(token)
    except TokenError:
        return _plain("not authorized", 403)
    return JSONResponse(claims.model_dump())


def _plain(body: str, status: int, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status, headers=headers)
