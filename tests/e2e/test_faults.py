"""Crashes and restarts: a converter SIGKILLed mid-job, every service restarted with jobs queued."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests import media
from tests.e2e.conftest import login, wait_for_emails, wait_for_job
from tests.e2e.system import System

# Whole processes on 2 cores: slower than a unit test, bounded all the same.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def long_video(media_dir: Path) -> Path:
    """Twenty minutes of audio behind a tiny video: long enough to kill a conversion mid-way."""
    return media.h264_aac_mp4(media_dir / "long.mp4", seconds=1200, size="64x64", rate=1)


def upload(system: System, token: str, path: Path, name: str | None = None) -> dict[str, str]:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{system.url}/upload",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": (name or path.name, handle)},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    answer: dict[str, str] = response.json()
    return answer


def test_sigkilled_converter_mid_job_is_picked_up_again(system: System, long_video: Path) -> None:
    token = login(system, "georgio@email.com")
    outputs_before = len(system.blobs("audio"))
    # given a long job that a converter is working on
    job = upload(system, token, long_video)
    wait_for_job(
        system,
        token,
        job["job_id"],
        until=lambda j: j["state"] == "processing" and j["progress"] > 0,
    )
    # (meanwhile the course's download names the job's state)
    early = httpx.get(
        f"{system.url}/download?fid={job['fid']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert (early.status_code, early.text) == (409, "job is processing")
    # when that converter is killed without warning and a new one starts
    assert system.stop("converter", sig=signal.SIGKILL) == -signal.SIGKILL
    system.start("converter")
    # then the job completes once: one output, one email
    done = wait_for_job(system, token, job["job_id"], timeout=300)
    assert done["state"] == "succeeded", done
    assert done["attempt"] >= 2
    assert abs(done["output"]["duration_seconds"] - 1200) < 2
    assert len(system.blobs("audio")) == outputs_before + 1
    assert len(wait_for_emails(system, job["fid"])) == 1
    assert not list((system.data_dir / "tmp").rglob("*.mp3"))


def test_restart_of_every_service_with_jobs_queued_loses_and_duplicates_nothing(
    system: System, h264_mp4: Path
) -> None:
    token = login(system, "other@example.com")
    outputs_before = len(system.blobs("audio"))
    # given no converter running and six jobs waiting
    assert system.stop("converter") == 0
    jobs = [upload(system, token, h264_mp4, name=f"queued-{n}.mp4") for n in range(6)]
    # when every service stops cleanly and starts again, now with two converters sharing the work
    codes = system.stop_all()
    assert set(codes.values()) == {0}, codes
    system.start_all()
    system.start("converter-2")
    token = login(system, "other@example.com")
    # then every job completes exactly once
    for job in jobs:
        assert wait_for_job(system, token, job["job_id"])["state"] == "succeeded"
    assert len(system.blobs("audio")) == outputs_before + 6
    for job in jobs:
        assert len(wait_for_emails(system, job["fid"], settle=0.1)) == 1
