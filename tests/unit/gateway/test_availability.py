"""Health, readiness and outages: a lost database answers 503 with Retry-After, never 500."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.db import create_engine
from earshot.common.problems import PROBLEM_MEDIA_TYPE
from earshot.common.tokens import Claims, KeySetUnavailable
from tests.unit.gateway.helpers import FlakyQueue, TokenMaker, blob_keys, file_part, multipart


async def test_healthz_and_readyz(client: httpx.AsyncClient, queue: FlakyQueue) -> None:
    alive = await client.get("/healthz")
    ready = await client.get("/readyz")
    queue.down = True
    not_ready = await client.get("/readyz")

    assert alive.status_code == 200
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"database", "queue", "storage"}
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["queue"].startswith("error")


@pytest.fixture
async def broken_client(
    tmp_path: Path, make_app: Callable[..., FastAPI]
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose database folder vanished (a lost volume)."""
    folder = tmp_path / "lost-volume"
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'jobs.db'}")
    shutil.rmtree(folder)
    app = make_app(engine=engine)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client
    finally:
        await engine.dispose()


async def test_database_down_is_503_with_retry_after(
    broken_client: httpx.AsyncClient, tokens: TokenMaker
) -> None:
    api = await broken_client.get("/api/v1/jobs", headers=tokens.headers())
    course = await broken_client.get("/download", params={"fid": "x"}, headers=tokens.headers())
    ready = await broken_client.get("/readyz")

    assert api.status_code == 503
    assert api.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert int(api.headers["retry-after"]) > 0
    assert course.status_code == 503
    assert course.headers["content-type"].startswith("text/plain")
    assert "retry-after" in course.headers
    assert ready.status_code == 503


async def test_database_down_at_upload_is_503_and_leaves_no_file(
    broken_client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path, blobs: FolderBlobStore
) -> None:
    body, content_type = multipart(file_part(h264_mp4))

    response = await broken_client.post(
        "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )

    assert response.status_code == 503
    assert await blob_keys(blobs) == []


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    made = await client.get("/healthz")

    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


async def test_metrics_count_uploads_by_outcome(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path, text_file: Path
) -> None:
    for video in (h264_mp4, text_file):
        body, content_type = multipart(file_part(video))
        await client.post(
            "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
        )

    metrics = (await client.get("/metrics")).text

    assert 'earshot_gateway_uploads_total{outcome="accepted"} 1.0' in metrics
    assert 'earshot_gateway_uploads_total{outcome="415"} 1.0' in metrics
    assert 'earshot_gateway_job_transitions_total{state="queued"} 1.0' in metrics


async def test_signing_keys_unavailable_is_503_not_401(
    make_app: Callable[..., FastAPI], tokens: TokenMaker
) -> None:
    class NoKeys:
        async def verify(self, token: str) -> Claims:
            raise KeySetUnavailable("cannot fetch the signing keys")

    transport = httpx.ASGITransport(app=make_app(verifier=NoKeys()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        api = await client.get("/api/v1/jobs", headers=tokens.headers())
        course = await client.get("/download?fid=x", headers=tokens.headers())

    assert api.status_code == 503 and "retry-after" in api.headers
    assert course.status_code == 503
