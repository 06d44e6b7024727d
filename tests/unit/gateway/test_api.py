"""`/api/v1`: create, list, read, download (Range, ETag) and delete jobs; problem+json errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import JOBS_QUEUE, JobSucceeded
from earshot.common.problems import PROBLEM_MEDIA_TYPE
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.gateway.deps import Gateway
from earshot.gateway.events import JobEventHandler
from tests.unit.gateway.helpers import (
    BOB,
    TokenMaker,
    blob_keys,
    file_part,
    multipart,
    submitted,
    take,
)

AUDIO = bytes(range(256)) * 40  # 10 240 bytes of "audio"


async def create(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    video: Path,
    *fields: tuple[str, None, bytes],
    user: tuple[str, str] | None = None,
    filename: str | None = None,
) -> httpx.Response:
    name, original, content = file_part(video)
    body, content_type = multipart((name, filename or original, content), *fields)
    headers = {**(tokens.headers(user) if user else tokens.headers()), "Content-Type": content_type}
    return await client.post("/api/v1/jobs", content=body, headers=headers)


async def finish(gateway: Gateway, blobs: FolderBlobStore, job: dict[str, Any]) -> None:
    """Play the converter: store the audio and report success."""
    key = f"audio/{job['fid']}.{job['format']}"
    async with blobs.open_write(key) as writer:
        await writer.write(AUDIO)
    handler = JobEventHandler(gateway.sessions, blobs, gateway.relay, public_url="http://g")
    await handler.apply(JobSucceeded(job_id=job["id"], output_key=key, output_bytes=len(AUDIO)))


async def test_create_answers_202_with_the_job_and_its_location(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path, embedded_queue: EmbeddedQueue
) -> None:
    response = await create(
        client, tokens, h264_mp4, ("format", None, b"opus"), ("bitrate", None, b"96k")
    )

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert (job["state"], job["progress"], job["format"], job["bitrate"]) == (
        "queued",
        0,
        "opus",
        "96k",
    )
    assert job["input"]["audio_codec"] == "aac" and job["input"]["video_codec"] == "h264"
    assert job["output"] is None and job["download_url"] is None
    message = submitted(await take(embedded_queue, JOBS_QUEUE))
    assert (message.options.format, message.options.bitrate) == ("opus", "96k")
    assert message.output_key.endswith(".opus")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ((("bitrate", None, b"128k"), ("quality", None, b"2")), "not both"),
        ((("format", None, b"wma"),), "format"),
        ((("quality", None, b"11"),), "quality"),
        ((("bitrate", None, b"loud"),), "bitrate"),
    ],
)
async def test_bad_options_are_422_and_leave_no_file(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    blobs: FolderBlobStore,
    fields: tuple[tuple[str, None, bytes], ...],
    detail: str,
) -> None:
    response = await create(client, tokens, h264_mp4, *fields)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert detail in response.json()["detail"]
    assert await blob_keys(blobs) == []


async def test_the_file_must_come_in_the_file_field(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path
) -> None:
    body, content_type = multipart(file_part(h264_mp4, "video"))
    response = await client.post(
        "/api/v1/jobs", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )

    assert response.status_code == 400
    assert "`file`" in response.json()["detail"]


async def test_list_shows_only_own_jobs_newest_first_in_pages(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path
) -> None:
    mine = [(await create(client, tokens, h264_mp4)).json()["id"] for _ in range(3)]
    await create(client, tokens, h264_mp4, user=BOB)

    first = (await client.get("/api/v1/jobs?limit=2", headers=tokens.headers())).json()
    second = (await client.get(first["next"], headers=tokens.headers())).json()

    assert [job["id"] for job in first["items"] + second["items"]] == mine[::-1]
    assert second["next"] is None and second["next_cursor"] is None


async def test_list_refuses_bad_paging(client: httpx.AsyncClient, tokens: TokenMaker) -> None:
    too_many = await client.get("/api/v1/jobs?limit=100000", headers=tokens.headers())
    bad_cursor = await client.get("/api/v1/jobs?cursor=%%%", headers=tokens.headers())

    assert too_many.status_code == 422
    assert bad_cursor.status_code == 422
    assert bad_cursor.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_get_shows_progress_and_output_and_hides_others_jobs(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: FolderBlobStore,
) -> None:
    job = (await create(client, tokens, h264_mp4)).json()
    await finish(gateway, blobs, job)

    mine = await client.get(f"/api/v1/jobs/{job['id']}", headers=tokens.headers())
    theirs = await client.get(f"/api/v1/jobs/{job['id']}", headers=tokens.headers(BOB))

    assert mine.status_code == 200
    done = mine.json()
    assert (done["state"], done["progress"]) == ("succeeded", 100)
    assert done["output"] == {
        "bytes": len(AUDIO),
        "duration_seconds": None,
        "filename": "video.mp3",
    }
    assert done["download_url"] == f"/api/v1/jobs/{job['id']}/audio"
    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_audio_supports_range_etag_and_names_the_download(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: FolderBlobStore,
) -> None:
    job = (await create(client, tokens, h264_mp4, filename="Été à Paris.mp4")).json()
    await finish(gateway, blobs, job)
    url = f"/api/v1/jobs/{job['id']}/audio"
    auth = tokens.headers()

    whole = await client.get(url, headers=auth)
    part = await client.get(url, headers={**auth, "Range": "bytes=100-199"})
    tail = await client.get(url, headers={**auth, "Range": "bytes=-10"})
    beyond = await client.get(url, headers={**auth, "Range": "bytes=999999-"})
    cached = await client.get(url, headers={**auth, "If-None-Match": whole.headers["etag"]})

    assert whole.status_code == 200 and whole.content == AUDIO
    assert whole.headers["content-length"] == str(len(AUDIO))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/mpeg"
    assert whole.headers["content-disposition"] == (
        'attachment; filename="_t_ _ Paris.mp3"; '
        "filename*=UTF-8''%C3%89t%C3%A9%20%C3%A0%20Paris.mp3"
    )
    assert part.status_code == 206 and part.content == AUDIO[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(AUDIO)}"
    assert tail.status_code == 206 and tail.content == AUDIO[-10:]
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(AUDIO)}"
    assert cached.status_code == 304 and cached.content == b""


async def test_audio_of_an_unfinished_job_is_409(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path
) -> None:
    job = (await create(client, tokens, h264_mp4)).json()

    response = await client.get(f"/api/v1/jobs/{job['id']}/audio", headers=tokens.headers())

    assert response.status_code == 409
    assert response.json()["detail"] == "job is queued"


async def test_delete_removes_the_job_and_its_files(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: FolderBlobStore,
) -> None:
    job = (await create(client, tokens, h264_mp4)).json()
    await finish(gateway, blobs, job)
    async with blobs.open_write(f"videos/{job['id']}") as writer:
        await writer.write(b"input kept for this test")

    theirs = await client.delete(f"/api/v1/jobs/{job['id']}", headers=tokens.headers(BOB))
    mine = await client.delete(f"/api/v1/jobs/{job['id']}", headers=tokens.headers())
    after = await client.get(f"/api/v1/jobs/{job['id']}", headers=tokens.headers())

    assert theirs.status_code == 404
    assert mine.status_code == 204
    assert after.status_code == 404
    assert await blob_keys(blobs) == []


async def test_api_errors_are_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/jobs")

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401


async def test_token_route_proxies_to_auth(
    client: httpx.AsyncClient, auth_calls: list[httpx.Request]
) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"email": "alice@example.com", "password": "pw"}
    )

    assert response.status_code == 200
    assert response.json()["access_token"] == "a.b.c"
    assert auth_calls[0].url.path == "/api/v1/auth/token"
    assert auth_calls[0].headers["content-type"] == "application/json"


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}/audio", "/upload"} <= set(schema["paths"])
    assert (
        "multipart/form-data" in schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    )
    assert docs.status_code == 200
