"""Forwarding sign-in requests to the auth service, so users only ever talk to the gateway.

The client's address goes along in `X-Forwarded-For` (auth rate-limits per client and trusts it from
the gateway). The gateway sets that header itself: a client-supplied one would let a caller pose
as any address.
"""

from __future__ import annotations

import httpx
import structlog
from fastapi import Request, Response

from earshot.common.problems import Problem, ServiceUnavailable
from earshot.gateway.deps import Gateway

MAX_CREDENTIALS_BYTES = 16 * 1024
_FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "x-request-id")
_RETURNED_HEADERS = ("content-type", "retry-after", "www-authenticate", "cache-control")
_log = structlog.get_logger()


class AuthUnavailable(ServiceUnavailable):
    """The auth service did not answer."""


class CredentialsTooLarge(Problem):
    """A sign-in body far larger than any credentials."""

    status, title = 413, "Content Too Large"


async def forward(gateway: Gateway, request: Request, *, path: str) -> Response:
    """POST the request's credentials to auth's `path`; auth's status, body and key headers back."""
    body = await _read_small_body(request)
    headers = {
        name: value
        for name in _FORWARDED_REQUEST_HEADERS
        if (value := request.headers.get(name)) is not None
    }
    if request.client is not None:
        headers["x-forwarded-for"] = request.client.host
    try:
        answer = await gateway.auth_client.post(
            f"{gateway.settings.auth_url}{path}", content=body, headers=headers
        )
    except httpx.HTTPError as exc:
        _log.warning("auth.unreachable", error=str(exc) or type(exc).__name__)
        raise AuthUnavailable(
            "the auth service is unavailable, retry later", headers={"Retry-After": "5"}
        ) from exc
    returned = {name: answer.headers[name] for name in _RETURNED_HEADERS if name in answer.headers}
    return Response(content=answer.content, status_code=answer.status_code, headers=returned)


async def _read_small_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CREDENTIALS_BYTES:
            raise CredentialsTooLarge("the sign-in request is too large")
    return bytes(body)
