"""Error rendering: plain text on the course routes, problem+json elsewhere, 503 for outages.

The course's clients print the body they get, so its routes keep its plain-text bodies; every other
route answers RFC 9457 problem+json. A database or key-set outage is a 503 with `Retry-After`,
never a 500.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import ClientDisconnect

from earshot.common.blobs import BlobError
from earshot.common.problems import Problem, problem_response
from earshot.common.tokens import KeySetUnavailable

COURSE_PATHS = frozenset({"/login", "/upload", "/download"})
_log = structlog.get_logger()


class PlainTextProblem(Problem):
    """A problem answered as `text/plain` with the detail as the whole body (course routes)."""

    @classmethod
    def of(cls, problem: Problem) -> PlainTextProblem:
        """The same status, detail and headers, rendered as plain text."""
        return cls(
            problem.detail, status=problem.status, title=problem.title, headers=problem.headers
        )


def install_gateway_handlers(app: FastAPI, *, retry_after_seconds: int) -> None:
    """Register plain-text and outage handlers (after `install_problem_handlers`)."""

    async def on_plain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PlainTextProblem)
        return PlainTextResponse(exc.detail, status_code=exc.status, headers=exc.headers)

    async def on_database_down(request: Request, exc: Exception) -> Response:
        _log.error("database.unavailable", error=str(exc).splitlines()[0][:300])
        return unavailable(
            request, "the jobs database is unavailable, retry later", retry_after_seconds
        )

    async def on_keys_down(request: Request, exc: Exception) -> Response:
        _log.warning("tokens.keys_unavailable", error=str(exc))
        return unavailable(request, "tokens cannot be verified right now", retry_after_seconds)

    async def on_storage_down(request: Request, exc: Exception) -> Response:
        _log.error("storage.unavailable", error=str(exc).splitlines()[0][:300])
        return unavailable(request, "file storage is unavailable, retry later", retry_after_seconds)

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        _log.info("request.client_disconnected", path=request.url.path)
        return PlainTextResponse("client disconnected", status_code=400)

    app.add_exception_handler(PlainTextProblem, on_plain)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    for error in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(error, on_database_down)
    app.add_exception_handler(KeySetUnavailable, on_keys_down)
    # BlobNotFound is a subclass, but routes turn it into their own 404 before it gets here.
    app.add_exception_handler(BlobError, on_storage_down)


def unavailable(request: Request, detail: str, retry_after_seconds: int) -> Response:
    """A 503 with `Retry-After`, in the route's error style."""
    headers = {"Retry-After": str(retry_after_seconds)}
    if request.url.path in COURSE_PATHS:
        return PlainTextResponse(detail, status_code=503, headers=headers)
    return problem_response(
        request, status=503, title="Service Unavailable", detail=detail, headers=headers
    )
