"""The course's `/login`, `/upload` and `/download`: exact statuses and plain-text bodies."""

from __future__ import annotations

from pathlib import Path

import httpx

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.messages import JOBS_QUEUE, JobSucceeded
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


async def upload(
    client: httpx.AsyncClient, tokens: TokenMaker, video: Path, **kwargs: object
) -> httpx.Response:
    body, content_type = multipart(file_part(video))
    headers = {**tokens.headers(), "Content-Type": content_type}
    return await client.post("/upload", content=body, headers=headers)


async def test_login_forwards_basic_credentials_and_client_address(
    client: httpx.AsyncClient, auth_calls: list[httpx.Request]
) -> None:
    response = await client.post("/login", auth=("alice@example.com", "s3cret-pass"))

    assert response.status_code == 200
    assert response.text == "header.payload.signature"
    assert auth_calls[0].headers["x-forwarded-for"] == "203.0.113.7"


async def test_login_keeps_auth_errors_unchanged(client: httpx.AsyncClient) -> None:
    missing = await client.post("/login")
    wrong = await client.post("/login", auth=("alice@example.com", "nope"))

    assert (missing.status_code, missing.text) == (401, "missing credentials")
    assert (wrong.status_code, wrong.text) == (401, "invalid credentials")


async def test_login_when_auth_is_down_is_503(make_app: object, tokens: TokenMaker) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as down:
        app = make_app(auth_client=down)  # type: ignore[operator]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/login", auth=("a@b.c", "x"))

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")


async def test_upload_queues_the_job_and_tells_its_ids(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    embedded_queue: EmbeddedQueue,
    blobs: FolderBlobStore,
) -> None:
    response = await upload(client, tokens, h264_mp4)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "queued" and answer["message"] == "success!"
    message = submitted(await take(embedded_queue, JOBS_QUEUE))
    assert message.job_id == answer["job_id"]
    assert message.mp3_fid == answer["fid"]
    assert message.username == "alice@example.com"
    assert message.user_id == "user-alice"
    assert message.input_key == f"videos/{answer['job_id']}"
    assert message.output_key == f"audio/{answer['fid']}.mp3"
    assert message.original_filename == "video.mp4"
    assert message.input_audio_codec == "aac"
    assert message.input_duration_seconds is not None and message.input_duration_seconds > 2.5
    stored = await blobs.stat(message.input_key)
    assert stored is not None and stored.size_bytes == h264_mp4.stat().st_size


async def test_upload_without_a_file_is_400(client: httpx.AsyncClient, tokens: TokenMaker) -> None:
    body, content_type = multipart(("note", None, b"hello"))
    response = await client.post(
        "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )

    assert (response.status_code, response.text) == (400, "exactly 1 file required")


async def test_upload_that_is_not_multipart_is_400(
    client: httpx.AsyncClient, tokens: TokenMaker
) -> None:
    response = await client.post("/upload", content=b"raw", headers=tokens.headers())

    assert (response.status_code, response.text) == (400, "exactly 1 file required")


async def test_upload_with_two_files_is_400_and_stores_nothing(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path, blobs: FolderBlobStore
) -> None:
    body, content_type = multipart(file_part(h264_mp4), file_part(h264_mp4, "second"))
    response = await client.post(
        "/upload", content=body, headers={**tokens.headers(), "Content-Type": content_type}
    )

    assert (response.status_code, response.text) == (400, "exactly 1 file required")
    assert await blob_keys(blobs) == []


async def test_upload_without_token_or_with_a_bad_one_is_401(
    client: httpx.AsyncClient, h264_mp4: Path
) -> None:
    body, content_type = multipart(file_part(h264_mp4))
    missing = await client.post("/upload", content=body, headers={"Content-Type": content_type})
    forged = await client.post(
        "/upload",
        content=body,
        headers={"Content-Type": content_type, "Authorization": "Bearer not.a.token"},
    )

    assert (missing.status_code, missing.text) == (401, "not authorized")
    assert (forged.status_code, forged.text) == (401, "not authorized")


async def test_download_requires_a_token_and_a_fid(
    client: httpx.AsyncClient, tokens: TokenMaker
) -> None:
    anonymous = await client.get("/download", params={"fid": "x"})
    no_fid = await client.get("/download", headers=tokens.headers())

    assert (anonymous.status_code, anonymous.text) == (401, "not authorized")
    assert (no_fid.status_code, no_fid.text) == (400, "fid is required")


async def test_download_of_unknown_or_foreign_fid_is_404(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path
) -> None:
    fid = (await upload(client, tokens, h264_mp4)).json()["fid"]

    unknown = await client.get("/download", params={"fid": "0" * 24}, headers=tokens.headers())
    foreign = await client.get("/download", params={"fid": fid}, headers=tokens.headers(BOB))

    assert (unknown.status_code, unknown.text) == (404, "not found")
    assert (foreign.status_code, foreign.text) == (404, "not found")


async def test_download_of_an_unfinished_job_is_409_naming_its_state(
    client: httpx.AsyncClient, tokens: TokenMaker, h264_mp4: Path
) -> None:
    fid = (await upload(client, tokens, h264_mp4)).json()["fid"]

    response = await client.get("/download", params={"fid": fid}, headers=tokens.headers())

    assert (response.status_code, response.text) == (409, "job is queued")


async def test_download_of_a_finished_job_streams_the_mp3(
    client: httpx.AsyncClient,
    tokens: TokenMaker,
    h264_mp4: Path,
    gateway: Gateway,
    blobs: FolderBlobStore,
) -> None:
    answer = (await upload(client, tokens, h264_mp4)).json()
    output_key = f"audio/{answer['fid']}.mp3"
    async with blobs.open_write(output_key) as writer:
        await writer.write(b"ID3fake-mp3-bytes")
    handler = JobEventHandler(gateway.sessions, blobs, gateway.relay, public_url="http://g")
    await handler.apply(
        JobSucceeded(job_id=answer["job_id"], output_key=output_key, output_bytes=17)
    )

    response = await client.get(
        "/download", params={"fid": answer["fid"]}, headers=tokens.headers()
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.content == b"ID3fake-mp3-bytes"
