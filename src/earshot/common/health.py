"""`/healthz` (the process is alive) and `/readyz` (its dependencies answer) for HTTP services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_SECONDS = 3.0


def health_router(checks: Mapping[str, Check]) -> APIRouter:
    """Routes answering 200 when alive, and 200/503 with a line per dependency when (not) ready."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready; the reason is reported
                results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
        )

    return router
