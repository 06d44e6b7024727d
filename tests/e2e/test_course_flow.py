"""The course's three curl commands, unchanged, against earshot (COURSE.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import httpx
import pytest

from tests.e2e.conftest import login, wait_for_emails, wait_for_job
from tests.e2e.system import System
from tests.mail import plain_text

# Whole processes on 2 cores: slower than a unit test, bounded all the same.
pytestmark = pytest.mark.timeout(300)

CURL = shutil.which("curl")


def curl(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """Run a course curl command; returns (HTTP status, body).

    Real curl when it is installed; otherwise httpx sends the same request (method, Basic
    credentials, headers, one multipart file, output file), so the flow never goes unchecked.
    """
    if CURL is None:
        return _like_curl(list(args), cwd=cwd or Path.cwd())
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--write-out", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _like_curl(args: list[str], *, cwd: Path) -> tuple[int, str]:
    """The subset of curl's options the course's commands use, sent with httpx."""
    method, headers, url, output = "GET", {}, "", None
    auth: tuple[str, str] | None = None
    files: dict[str, tuple[str, bytes]] = {}
    words = iter(args)
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-u":
            user, _, password = next(words).partition(":")
            auth = (user, password)
        elif word == "-H":
            name, _, value = next(words).partition(": ")
            headers[name] = value
        elif word == "-F":
            field, _, value = next(words).partition("=@")
            files[field] = (Path(value).name, (cwd / value).read_bytes())
        elif word == "--output":
            output = cwd / next(words)
        else:
            url = word
    response = httpx.request(
        method, url, headers=headers, auth=auth, files=files or None, timeout=60
    )
    if output is not None:
        output.write_bytes(response.content)
        return response.status_code, ""
    return response.status_code, response.text


def test_course_curl_commands_work_unchanged(system: System, vp9_mkv: Path, tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{system.gateway_port}"
    # given the course's seed user and its video in the working directory
    shutil.copy(vp9_mkv, tmp_path / "video.mkv")

    # when they log in as the course does
    status, jwt = curl("-X", "POST", f"{host}/login", "-u", "georgio@email.com:Admin123")
    assert status == 200
    assert jwt.count(".") == 2

    # and upload as the course does
    status, body = curl(
        "-X", "POST", "-F", "file=@./video.mkv", "-H", f"Authorization: Bearer {jwt}",
        f"{host}/upload", cwd=tmp_path,
    )  # fmt: skip
    assert status == 200, body
    answer = json.loads(body)
    assert answer["job_id"] and answer["fid"]

    # then the job finishes and the course's download command gets the MP3
    job = wait_for_job(system, jwt, answer["job_id"])
    assert job["state"] == "succeeded", job
    status, _ = curl(
        "--output", "mp3_download.mp3", "-X", "GET", "-H", f"Authorization: Bearer {jwt}",
        f"{host}/download?fid={answer['fid']}", cwd=tmp_path,
    )  # fmt: skip
    assert status == 200
    with av.open(str(tmp_path / "mp3_download.mp3")) as container:
        stream = container.streams.audio[0]
        assert stream.codec.canonical_name == "mp3"
        assert container.duration is not None
        assert 2.5 < container.duration / 1_000_000 < 3.5

    # and the user got exactly one email naming the fid, with the course's subject
    mails = wait_for_emails(system, answer["fid"])
    assert len(mails) == 1
    assert mails[0]["Subject"] == "MP3 Download"
    assert mails[0]["To"] == "georgio@email.com"
    assert f"mp3 file_id: {answer['fid']} is now ready!" in plain_text(mails[0])


def test_login_errors_are_the_course_plain_text(system: System) -> None:
    missing = httpx.post(f"{system.url}/login", timeout=10)
    assert (missing.status_code, missing.text) == (401, "missing credentials")
    wrong = httpx.post(f"{system.url}/login", auth=("georgio@email.com", "nope"), timeout=10)
    assert (wrong.status_code, wrong.text) == (401, "invalid credentials")
    unknown = httpx.post(f"{system.url}/login", auth=("ghost@example.com", "x" * 9), timeout=10)
    assert (unknown.status_code, unknown.text) == (401, "invalid credentials")


def test_upload_needs_exactly_one_file(system: System, h264_mp4: Path) -> None:
    token = login(system, "georgio@email.com")
    headers = {"Authorization": f"Bearer {token}"}
    videos_before = system.blobs("videos")
    none = httpx.post(f"{system.url}/upload", headers=headers, data={"a": "b"}, timeout=30)
    assert (none.status_code, none.text) == (400, "exactly 1 file required")
    data = h264_mp4.read_bytes()
    two = httpx.post(
        f"{system.url}/upload",
        headers=headers,
        files=[("file", ("a.mp4", data)), ("other", ("b.mp4", data))],
        timeout=30,
    )
    assert (two.status_code, two.text) == (400, "exactly 1 file required")
    # and the rejected uploads left no file behind
    assert system.blobs("videos") == videos_before


def test_download_errors(system: System, h264_mp4: Path) -> None:
    owner = login(system, "georgio@email.com")
    other = login(system, "other@example.com")
    missing = httpx.get(f"{system.url}/download", headers={"Authorization": f"Bearer {owner}"})
    assert (missing.status_code, missing.text) == (400, "fid is required")
    unknown = httpx.get(
        f"{system.url}/download?fid=does-not-exist", headers={"Authorization": f"Bearer {owner}"}
    )
    assert unknown.status_code == 404

    # given a finished job of the owner's
    with h264_mp4.open("rb") as handle:
        upload = httpx.post(
            f"{system.url}/upload",
            headers={"Authorization": f"Bearer {owner}"},
            files={"file": ("clip.mp4", handle)},
            timeout=30,
        )
    fid = upload.json()["fid"]
    wait_for_job(system, owner, upload.json()["job_id"])
    # when another user asks for its fid, then it does not exist for them
    stolen = httpx.get(
        f"{system.url}/download?fid={fid}", headers={"Authorization": f"Bearer {other}"}
    )
    assert stolen.status_code == 404
    assert not stolen.content.startswith(b"ID3")
    # and without a token nobody gets it
    anonymous = httpx.get(f"{system.url}/download?fid={fid}")
    assert anonymous.status_code == 401
