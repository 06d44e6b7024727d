"""Prometheus metrics of one gateway: uploads, uploaded bytes, job state transitions.

Each app owns its registry (no import-time global), so tests and several apps in one process
never share counters.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest


class GatewayMetrics:
    """The gateway's counters and the `/metrics` route that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.uploads = Counter(
            "earshot_gateway_uploads",
            "Uploads by outcome (accepted, or the HTTP status of the refusal).",
            ["outcome"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "earshot_gateway_upload_bytes",
            "Bytes of accepted uploads.",
            registry=self.registry,
        )
        self.job_transitions = Counter(
            "earshot_gateway_job_transitions",
            "Jobs entering a state.",
            ["state"],
            registry=self.registry,
        )

    def router(self) -> APIRouter:
        """`GET /metrics` in the Prometheus text format."""
        router = APIRouter(tags=["health"])

        @router.get("/metrics", response_class=Response, include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return router
