"""The four services as processes on MariaDB + RabbitMQ + S3, under load and under faults.

Figures (jobs, durations, faults, lost and duplicated counts) are written to the test log with
`-s`, and to DATA_DIR/report.json, for the closing notes of issue 3.
"""

from __future__ import annotations

import json
import signal
import stat
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import pytest

from tests import media
from tests.e2e.system import System, earshot
from tests.integration.engines import mariadb_databases, rabbitmq_vhost, restart_rabbitmq
from tests.integration.faults import TcpProxy
from tests.moto_server import MotoServer
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

USERS = [f"user{n}@example.com" for n in range(10)]
PASSWORD = "distributed-password-1"
JOBS_PER_USER = 10
BUCKET = "earshot-faults"
POISON_MARK = "EARSHOT_POISON"


@dataclass
class Cluster:
    """The running system plus handles on its engines."""

    system: System
    proxy: TcpProxy
    moto: MotoServer
    smtp: SmtpSink
    tokens: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def _s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def s3_keys(self, prefix: str) -> list[str]:
        client = self._s3()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        client.close()
        return keys

    def unfinished_uploads(self) -> int:
        client = self._s3()
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        client.close()
        return len(uploads)

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def poison_ffmpeg(directory: Path) -> Path:
    """An ffmpeg that crashes (SIGSEGV) on inputs with the poison mark: a bug the probe misses."""
    real = media.ffmpeg_exe()
    script = directory / "ffmpeg-with-a-crash"
    script.write_text(
        "#!/bin/sh\n"
        'prev=""\n'
        'for arg in "$@"; do\n'
        '  if [ "$prev" = "-i" ]; then\n'
        '    path="${arg#file:}"\n'
        f'    if grep -q {POISON_MARK} "$path" 2>/dev/null; then kill -SEGV $$; fi\n'
        "  fi\n"
        '  prev="$arg"\n'
        "done\n"
        f'exec "{real}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("distributed")
    with mariadb_databases("auth", "jobs", "notifier") as dbs, rabbitmq_vhost() as vhost:
        proxy = TcpProxy(3306)
        proxy.start()
        moto = MotoServer()
        moto.start()
        smtp = SmtpSink()
        smtp.start()
        db_url = f"mysql+asyncmy://root@127.0.0.1:{proxy.port}"
        system = System(
            data_dir,
            extra_env={
                "EARSHOT_AUTH_DATABASE_URL": f"{db_url}/{dbs['auth']}",
                "EARSHOT_JOBS_DATABASE_URL": f"{db_url}/{dbs['jobs']}",
                "EARSHOT_NOTIFIER_DATABASE_URL": f"{db_url}/{dbs['notifier']}",
                "EARSHOT_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                "EARSHOT_STORAGE_URL": (
                    f"s3://{BUCKET}?endpoint_url={moto.endpoint_url}&region=us-east-1&create_bucket=1"
                ),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "EARSHOT_SMTP_URL": smtp.url,
                "EARSHOT_FFMPEG_PATH": str(poison_ffmpeg(data_dir)),
                "EARSHOT_CONVERTER_MAX_ATTEMPTS": "3",
                "EARSHOT_CONVERTER_RETRY_BACKOFF_BASE_SECONDS": "0.5",
                "EARSHOT_CONVERTER_RETRY_BACKOFF_MAX_SECONDS": "2",
                "EARSHOT_NOTIFIER_RETRY_BACKOFF_BASE_SECONDS": "0.5",
                "EARSHOT_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS": "5",
                "EARSHOT_ORPHAN_INPUT_SECONDS": "3600",
            },
        )
        cluster = Cluster(system, proxy, moto, smtp)
        try:
            done = earshot("migrate", env=system.env)
            assert done.returncode == 0, done.stderr
            for user in USERS:
                added = earshot(
                    "user", "add", user, "--password-stdin", env=system.env, stdin=PASSWORD
                )
                assert added.returncode == 0, added.stderr
            system.start_all()
            system.start("converter-2")
            for user in USERS:
                response = httpx.post(f"{system.url}/login", auth=(user, PASSWORD), timeout=30)
                assert response.status_code == 200, response.text
                cluster.tokens[user] = response.text
            yield cluster
        finally:
            for process in system.processes.values():
                process.kill()
                process.wait()
            (data_dir / "report.json").write_text(json.dumps(cluster.report, indent=2))
            smtp.stop()
            moto.stop()
            proxy.stop()


def runs_ffmpeg(process: psutil.Process) -> bool:
    """True while `process` has an ffmpeg among its descendants."""
    for child in process.children(recursive=True):
        try:
            if "ffmpeg" in child.name():
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def submit(cluster: Cluster, user: str, path: Path, name: str) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{cluster.system.url}/api/v1/jobs",
            headers=cluster.headers(user),
            files={"file": (name, handle, "video/mp4")},
            timeout=120,
        )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    job["user"] = user
    return job


def submit_concurrently(cluster: Cluster, path: Path, *, tag: str) -> list[dict[str, Any]]:
    work = [
        (user, f"{tag}-{user.split('@')[0]}-{n}.mp4")
        for user in USERS
        for n in range(JOBS_PER_USER)
    ]
    with ThreadPoolExecutor(max_workers=20) as pool:
        return list(pool.map(lambda item: submit(cluster, item[0], path, item[1]), work))


def job_state(cluster: Cluster, job: dict[str, Any]) -> dict[str, Any] | None:
    """The job as the API shows it now; None while the API cannot answer (an outage)."""
    try:
        response = httpx.get(
            f"{cluster.system.url}/api/v1/jobs/{job['id']}",
            headers=cluster.headers(job["user"]),
            timeout=15,
        )
    except httpx.TransportError:
        return None
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_final(
    cluster: Cluster, jobs: list[dict[str, Any]], *, timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    pending = {job["id"]: job for job in jobs}
    final: dict[str, dict[str, Any]] = {}
    while pending:
        for job_id, job in list(pending.items()):
            state = job_state(cluster, job)
            if state and state["state"] in ("succeeded", "failed"):
                state["user"] = job["user"]
                final[job_id] = state
                del pending[job_id]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} jobs not final\n{cluster.system.logs()}")
        time.sleep(0.5)
    return [final[job["id"]] for job in jobs]


def emails_per_job(cluster: Cluster, jobs: list[dict[str, Any]]) -> Counter[str]:
    ids = {job["id"] for job in jobs}
    counts: Counter[str] = Counter()
    for message in list(cluster.smtp.received):
        job_id = str(message["Message-ID"]).strip("<>").split(".", 1)[0]
        if job_id in ids:
            counts[job_id] += 1
    return counts


def assert_exactly_once(cluster: Cluster, jobs: list[dict[str, Any]]) -> dict[str, int]:
    """Every job final and succeeded, one output each, one email each, no orphan blobs."""
    outputs = cluster.s3_keys("audio/")
    expected_outputs = {f"audio/{job['fid']}.mp3" for job in jobs}
    deadline = time.monotonic() + 60
    while len(emails_per_job(cluster, jobs)) < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.5)
    emails = emails_per_job(cluster, jobs)
    figures = {
        "jobs": len(jobs),
        "succeeded": sum(job["state"] == "succeeded" for job in jobs),
        "outputs": len(expected_outputs & set(outputs)),
        "emails": sum(emails.values()),
        "lost_emails": sum(1 for job in jobs if emails[job["id"]] == 0),
        "duplicate_emails": sum(count - 1 for count in emails.values() if count > 1),
        "leftover_inputs": len(cluster.s3_keys("videos/")),
        "unfinished_multipart_uploads": cluster.unfinished_uploads(),
    }
    assert figures["succeeded"] == len(jobs), [j for j in jobs if j["state"] != "succeeded"][:3]
    assert figures["outputs"] == len(jobs)
    assert figures["lost_emails"] == 0 and figures["duplicate_emails"] == 0, figures
    assert figures["leftover_inputs"] == 0 and figures["unfinished_multipart_uploads"] == 0, figures
    return figures


def test_100_concurrent_jobs_from_10_users_all_succeed_in_isolation(
    cluster: Cluster, media_dir: Path
) -> None:
    clip = media.h264_aac_mp4(media_dir / "dist-short.mp4", seconds=2)
    started = time.monotonic()
    jobs = submit_concurrently(cluster, clip, tag="load")
    submitted = time.monotonic() - started
    final = wait_final(cluster, jobs, timeout=600)
    figures = assert_exactly_once(cluster, final)
    # each user sees exactly their own ten jobs, and nobody else's audio
    for user in USERS:
        listed = httpx.get(
            f"{cluster.system.url}/api/v1/jobs?limit=100", headers=cluster.headers(user), timeout=30
        ).json()["items"]
        assert {item["id"] for item in listed} == {j["id"] for j in final if j["user"] == user}
    stranger = next(j for j in final if j["user"] != USERS[0])
    stolen = httpx.get(
        f"{cluster.system.url}/download?fid={stranger['fid']}", headers=cluster.headers(USERS[0])
    )
    assert stolen.status_code == 404
    figures |= {
        "submit_seconds": round(submitted, 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    cluster.report["load"] = figures
    print("load run:", figures)  # noqa: T201


def test_100_jobs_survive_a_killed_converter_a_broker_restart_and_a_database_outage(
    cluster: Cluster, media_dir: Path
) -> None:
    clip = media.h264_aac_mp4(media_dir / "dist-long.mp4", seconds=180, size="64x64", rate=1)
    system = cluster.system
    started = time.monotonic()
    jobs = submit_concurrently(cluster, clip, tag="faults")
    faults: dict[str, Any] = {}

    # a converter dies mid-conversion: while its ffmpeg runs, before any output is stored
    converter = psutil.Process(system.processes["converter"].pid)
    deadline = time.monotonic() + 120
    while not runs_ffmpeg(converter):
        assert time.monotonic() < deadline, "the converter never ran ffmpeg"
        time.sleep(0.02)
    assert system.stop("converter", sig=signal.SIGKILL) == -signal.SIGKILL
    system.start("converter")
    faults["converter_sigkill"] = 1

    # the broker restarts under running services
    faults["rabbitmq_restart_seconds"] = round(restart_rabbitmq(), 1)

    # the database is unreachable for 10 s: the API answers 503 + Retry-After, fast
    cluster.proxy.cut()
    outage_started, answers = time.monotonic(), Counter[int]()
    while time.monotonic() - outage_started < 10:
        request_started = time.monotonic()
        response = httpx.get(
            f"{system.url}/api/v1/jobs", headers=cluster.headers(USERS[1]), timeout=15
        )
        assert time.monotonic() - request_started < 10, "the API hung during the outage"
        answers[response.status_code] += 1
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) > 0
        time.sleep(0.5)
    cluster.proxy.restore()
    assert set(answers) == {503}, answers
    faults["db_outage_seconds"] = 10
    faults["api_answers_during_outage"] = dict(answers)

    final = wait_final(cluster, jobs, timeout=900)
    figures = assert_exactly_once(cluster, final)
    figures["redelivered_jobs"] = sum(job["attempt"] > 1 for job in final)
    assert figures["redelivered_jobs"] >= 1, "the killed converter's job was not taken again"
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    cluster.report["faults"] = {**figures, **faults}
    print("fault run:", cluster.report["faults"])  # noqa: T201
    for process in system.processes.values():
        assert process.poll() is None, system.logs()


def test_a_poison_job_is_failed_and_dead_lettered_without_blocking_others(
    cluster: Cluster, media_dir: Path
) -> None:
    poison = media_dir / "poison.mp4"
    media.h264_aac_mp4(poison, seconds=2)
    tagged = media_dir / "poison-tagged.mp4"
    media.tag(poison, tagged, title=POISON_MARK)
    clip = media.h264_aac_mp4(media_dir / "dist-short.mp4", seconds=2)
    user = USERS[3]
    bad = submit(cluster, user, tagged, "poison.mp4")
    good = [submit(cluster, user, clip, f"beside-poison-{n}.mp4") for n in range(5)]

    finished = wait_final(cluster, [bad, *good], timeout=300)
    assert [job["state"] for job in finished[1:]] == ["succeeded"] * 5
    failed = finished[0]
    assert failed["state"] == "failed"
    assert "3 attempts" in failed["error"], failed
    listed = earshot("dead-letters", "list", "video", env=cluster.system.env)
    assert listed.returncode == 0, listed.stderr
    assert bad["id"] in listed.stdout
    assert cluster.s3_keys(f"audio/{bad['fid']}") == []
    cluster.report["poison"] = {"attempts": failed["attempt"], "error": failed["error"]}
