"""The `/api/v1` walk-through from the README, and every bad input, against real processes."""

from __future__ import annotations

from pathlib import Path

import av
import httpx
import pytest

from tests.e2e.conftest import login, wait_for_job
from tests.e2e.system import System

# Whole processes on 2 cores: slower than a unit test, bounded all the same.
pytestmark = pytest.mark.timeout(300)


def test_api_walkthrough(system: System, h264_mp4: Path, tmp_path: Path) -> None:
    # given a token from the API
    token_response = httpx.post(
        f"{system.url}/api/v1/auth/token",
        json={"email": "other@example.com", "password": "other-password-9"},
        timeout=10,
    )
    assert token_response.status_code == 200, token_response.text
    headers = {"Authorization": f"Bearer {token_response.json()['access_token']}"}

    # when a job asks for Opus at 96k
    with h264_mp4.open("rb") as handle:
        created = httpx.post(
            f"{system.url}/api/v1/jobs",
            headers=headers,
            files={"file": ("Holiday clip.mp4", handle, "video/mp4")},
            data={"format": "opus", "bitrate": "96k"},
            timeout=30,
        )
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["state"] in ("queued", "processing")

    # then it succeeds with input and output facts
    done = wait_for_job(system, token_response.json()["access_token"], job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"] == 100
    assert done["output"]["bytes"] > 0
    assert abs(done["input"]["duration_seconds"] - 3.0) < 0.5

    # and the audio downloads whole, by range, and with the original name
    audio_url = f"{system.url}/api/v1/jobs/{job['id']}/audio"
    whole = httpx.get(audio_url, headers=headers, timeout=30)
    assert whole.status_code == 200
    assert int(whole.headers["content-length"]) == done["output"]["bytes"] == len(whole.content)
    assert 'filename="Holiday clip.opus"' in whole.headers["content-disposition"]
    (tmp_path / "out.opus").write_bytes(whole.content)
    with av.open(str(tmp_path / "out.opus")) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
    part = httpx.get(audio_url, headers={**headers, "Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206
    assert part.content == whole.content[10:20]
    cached = httpx.get(audio_url, headers={**headers, "If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304

    # and the list shows it, newest first, to its owner only
    mine = httpx.get(f"{system.url}/api/v1/jobs", headers=headers, timeout=10).json()
    assert mine["items"][0]["id"] == job["id"]
    theirs = login(system, "georgio@email.com")
    others = httpx.get(
        f"{system.url}/api/v1/jobs", headers={"Authorization": f"Bearer {theirs}"}, timeout=10
    ).json()
    assert job["id"] not in {item["id"] for item in others["items"]}
    foreign = httpx.get(
        f"{system.url}/api/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {theirs}"}
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("application/problem+json")

    # and deleting it removes the job and its files
    outputs_before = len(system.blobs("audio"))
    deleted = httpx.delete(f"{system.url}/api/v1/jobs/{job['id']}", headers=headers, timeout=10)
    assert deleted.status_code == 204
    assert httpx.get(f"{system.url}/api/v1/jobs/{job['id']}", headers=headers).status_code == 404
    assert len(system.blobs("audio")) == outputs_before - 1
    assert not [p for p in system.blobs("videos") if job["id"] in p.name]


def test_bad_inputs_get_clear_errors_and_leave_nothing(
    system: System, silent_mp4: Path, truncated_mp4: Path, text_file: Path
) -> None:
    token = login(system, "georgio@email.com")
    headers = {"Authorization": f"Bearer {token}"}
    videos_before = system.blobs("videos")
    cases = [
        (text_file, 415, "not a media file"),
        (silent_mp4, 422, "the video has no audio track"),
        (truncated_mp4, 422, ""),
    ]
    for path, status, detail in cases:
        with path.open("rb") as handle:
            response = httpx.post(
                f"{system.url}/api/v1/jobs",
                headers=headers,
                files={"file": (path.name, handle)},
                timeout=30,
            )
        assert response.status_code == status, (path.name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert detail in response.json()["detail"]
    bad_option = httpx.post(
        f"{system.url}/api/v1/jobs",
        headers=headers,
        files={"file": ("x.mp4", b"x")},
        data={"format": "exe"},
        timeout=30,
    )
    assert bad_option.status_code == 422
    broken_form = httpx.post(
        f"{system.url}/upload",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=x"},
        content=b"--x\r\n",
        timeout=30,
    )
    assert broken_form.status_code == 400
    bad_token = httpx.get(f"{system.url}/api/v1/jobs", headers={"Authorization": "Bearer abc.def"})
    assert bad_token.status_code == 401
    assert system.blobs("videos") == videos_before
    # and none of those made a job
    listed = httpx.get(f"{system.url}/api/v1/jobs", headers=headers, timeout=10).json()["items"]
    assert not any(item["input"]["filename"] in {"notes.mp4", "silent.mp4"} for item in listed)
