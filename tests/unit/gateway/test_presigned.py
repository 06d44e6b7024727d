"""`download_redirect`: audio downloads answered with a 307 to the store's presigned URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from earshot.common.blobs import presign_download
from earshot.common.blobs.folder import FolderBlobStore
from earshot.gateway.deps import Gateway
from earshot.gateway.settings import GatewaySettings
from tests.unit.gateway.helpers import TokenMaker
from tests.unit.gateway.test_api import AUDIO, create, finish

PRESIGNED = "https://store.test/bucket/audio?X-Amz-Signature=abc"
DISPOSITION = (
    "attachment; filename=\"_t_ _ Paris.mp3\"; filename*=UTF-8''%C3%89t%C3%A9%20%C3%A0%20Paris.mp3"
)


class PresigningFolder(FolderBlobStore):
    """The folder store plus S3's capability to presign, recording each request."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.presigned: list[dict[str, Any]] = []

    async def presign_download(
        self, key: str, *, content_disposition: str, media_type: str, expires_seconds: int
    ) -> str:
        self.presigned.append(
            {
                "key": key,
                "content_disposition": content_disposition,
                "media_type": media_type,
                "expires_seconds": expires_seconds,
            }
        )
        return PRESIGNED


@pytest.fixture
def settings(settings: GatewaySettings) -> GatewaySettings:
    return settings.model_copy(update={"download_redirect": True, "download_redirect_seconds": 90})


@pytest.fixture
def blobs(tmp_path: Path) -> PresigningFolder:
    return PresigningFolder(tmp_path / "blobs")


async def finished_job(
    client: httpx.AsyncClient, tokens: TokenMaker, video: Path, gateway: Gateway
) -> dict[str, Any]:
    job = (await create(client, tokens, video, filename="Été à Paris.mp4")).json()
    assert isinstance(gateway.blobs, FolderBlobStore)
    await finish(gateway, gateway.blobs, job)
    return dict(job)


@pytest.fixture
async def other_client(
    make_app: Callable[..., FastAPI],
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients of further apps built over the same database with other settings or adapters."""
    opened: list[httpx.AsyncClient] = []

    def build(**overrides: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=make_app(**overrides))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://gateway.test"))
        return opened[-1]

    yield build
    for client in opened:
        await client.aclose()


async def test_api_audio_redirects_to_a_presigned_url_naming_the_file(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: PresigningFolder,
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)

    response = await client.get(f"/api/v1/jobs/{job['id']}/audio", headers=tokens.headers())

    assert response.status_code == 307
    assert response.headers["location"] == PRESIGNED
    assert response.headers["cache-control"] == "private, no-store"
    assert blobs.presigned == [
        {
            "key": f"audio/{job['fid']}.mp3",
            "content_disposition": DISPOSITION,
            "media_type": "audio/mpeg",
            "expires_seconds": 90,
        }
    ]


async def test_course_download_redirects_too(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path, gateway: Gateway
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)

    response = await client.get("/download", params={"fid": job["fid"]}, headers=tokens.headers())

    assert (response.status_code, response.headers["location"]) == (307, PRESIGNED)


async def test_a_fresh_cached_copy_is_304_not_a_redirect(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: PresigningFolder,
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)
    info = await blobs.stat(f"audio/{job['fid']}.mp3")
    assert info is not None

    response = await client.get(
        f"/api/v1/jobs/{job['id']}/audio",
        headers={**tokens.headers(), "If-None-Match": f'"{info.etag}"'},
    )

    assert response.status_code == 304
    assert blobs.presigned == []


async def test_a_missing_audio_file_is_404_not_a_redirect(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: PresigningFolder,
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)
    await blobs.delete(f"audio/{job['fid']}.mp3")

    response = await client.get(f"/api/v1/jobs/{job['id']}/audio", headers=tokens.headers())

    assert response.status_code == 404
    assert blobs.presigned == []


async def test_without_the_setting_the_gateway_streams(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    settings: GatewaySettings,
    other_client: Callable[..., httpx.AsyncClient],
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)
    plain = other_client(settings=settings.model_copy(update={"download_redirect": False}))

    response = await plain.get(f"/api/v1/jobs/{job['id']}/audio", headers=tokens.headers())

    assert (response.status_code, response.content) == (200, AUDIO)


async def test_a_store_that_cannot_presign_streams(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    tmp_path: Path,
    other_client: Callable[..., httpx.AsyncClient],
) -> None:
    job = await finished_job(client, tokens, h264_mp4, gateway)
    folder = FolderBlobStore(tmp_path / "blobs")
    assert (
        await presign_download(
            folder,
            "k",
            content_disposition="attachment",
            media_type="audio/mpeg",
            expires_seconds=60,
        )
        is None
    )

    response = await other_client(blobs=folder).get(
        f"/api/v1/jobs/{job['id']}/audio", headers=tokens.headers()
    )

    assert (response.status_code, response.content) == (200, AUDIO)
