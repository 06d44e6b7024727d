"""`earshot dead-letters list|redrive` on the embedded queue and on RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from earshot.cli.deadletters import app
from earshot.common.messages import JOBS_QUEUE, NOTIFICATIONS_QUEUE, dead_letter_queue
from earshot.common.queue import open_queue
from tests.rabbitmq import delete_queues, rabbitmq_url  # noqa: F401 - a session fixture
from tests.unit.common.conftest import close_iterator


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def broker_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The broker the command reaches through EARSHOT_BROKER_URL."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("EARSHOT_DATA_DIR", str(tmp_path / "data"))
    if request.param == "embedded":
        url = f"sqlite:///{tmp_path / 'data' / 'queue.db'}"
    else:
        url = request.getfixturevalue("rabbitmq_url")
    monkeypatch.setenv("EARSHOT_BROKER_URL", url)
    yield url
    if request.param == "rabbitmq":
        names = [
            q for name in (JOBS_QUEUE, NOTIFICATIONS_QUEUE) for q in (name, dead_letter_queue(name))
        ]
        asyncio.run(delete_queues(url, names))


def dead_letter(url: str, *jobs: str, queue_name: str = JOBS_QUEUE) -> None:
    """Publish one message per job to `queue_name` and dead-letter each."""

    async def run() -> None:
        queue = open_queue(url)
        try:
            for job in jobs:
                await queue.publish(
                    queue_name, json.dumps({"job_id": job}).encode(), message_id=job
                )
            deliveries = queue.consume(queue_name)
            for _ in jobs:
                delivery = await asyncio.wait_for(anext(deliveries), 5)
                await delivery.dead_letter(reason=f"ffmpeg crashed on {delivery.message_id}")
            await close_iterator(deliveries)
        finally:
            await queue.close()

    asyncio.run(run())


def next_delivery(url: str, queue_name: str) -> tuple[str, int]:
    """(message_id, attempt) of the next delivery of `queue_name`, acked."""

    async def run() -> tuple[str, int]:
        queue = open_queue(url)
        try:
            deliveries = queue.consume(queue_name)
            delivery = await asyncio.wait_for(anext(deliveries), 5)
            await delivery.ack()
            await close_iterator(deliveries)
            return delivery.message_id, delivery.attempt
        finally:
            await queue.close()

    return asyncio.run(run())


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_list_shows_message_job_and_reason_and_leaves_them(broker_url: str) -> None:
    dead_letter(broker_url, "j1", "j2")

    listed = cli("list", JOBS_QUEUE)
    again = cli("list", JOBS_QUEUE, "--json")

    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "MESSAGE ID\tJOB ID\tREASON",
        "j1\tj1\tffmpeg crashed on j1",
        "j2\tj2\tffmpeg crashed on j2",
    ]
    rows = json.loads(again.output)
    assert [(r["message_id"], r["reason"]) for r in rows] == [
        ("j1", "ffmpeg crashed on j1"),
        ("j2", "ffmpeg crashed on j2"),
    ]
    assert json.loads(rows[0]["body"]) == {"job_id": "j1"}


# Redriving a `video` message also reopens its job in the gateway's database: that path is tested
# with real jobs in tests/unit/gateway/test_admin.py; here the notifications queue needs no job.


def test_redrive_one_delivers_it_afresh(broker_url: str) -> None:
    dead_letter(broker_url, "j1", "j2", queue_name=NOTIFICATIONS_QUEUE)

    done = cli("redrive", NOTIFICATIONS_QUEUE, "j2")

    assert (done.exit_code, done.output.strip()) == (0, "redrove 1 message to mp3")
    assert next_delivery(broker_url, NOTIFICATIONS_QUEUE) == ("j2", 1)
    listed = json.loads(cli("list", NOTIFICATIONS_QUEUE, "--json").output)
    assert [row["message_id"] for row in listed] == ["j1"]


def test_redrive_all_empties_the_dead_letter_queue(broker_url: str) -> None:
    dead_letter(broker_url, "j1", "j2", "j3", queue_name=NOTIFICATIONS_QUEUE)

    done = cli("redrive", NOTIFICATIONS_QUEUE, "--all")

    assert (done.exit_code, done.output.strip()) == (0, "redrove 3 messages to mp3")
    assert cli("list", NOTIFICATIONS_QUEUE).output.strip() == "no dead letters in mp3.dead"


def test_a_video_message_that_is_no_job_is_not_redriven(broker_url: str) -> None:
    dead_letter(broker_url, "garbage")

    done = cli("redrive", JOBS_QUEUE, "garbage")

    assert done.exit_code == 2
    assert done.output.strip() == "error: the message is not a job; it cannot be redriven"


def test_redrive_of_a_missing_message_fails_with_one_line(broker_url: str) -> None:
    done = cli("redrive", JOBS_QUEUE, "nope")

    assert done.exit_code == 1
    assert done.output.strip() == "error: nope is not in video.dead"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "videos"), "unknown queue 'videos'"),
        (("redrive", JOBS_QUEUE), "name one MESSAGE_ID or pass --all"),
        (("redrive", JOBS_QUEUE, "m1", "--all"), "name one MESSAGE_ID or pass --all"),
    ],
)
def test_bad_arguments_fail_before_touching_the_broker(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARSHOT_BROKER_URL", "amqp://guest:guest@127.0.0.1:1/")

    done = cli(*args)

    assert done.exit_code == 2
    assert done.output.startswith("error: ")
    assert message in done.output


def test_an_unreachable_broker_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARSHOT_BROKER_URL", "amqp://guest:secret@127.0.0.1:1/")

    done = cli("list", JOBS_QUEUE)

    assert done.exit_code == 2
    assert done.output.startswith("error: RabbitMQ amqp://guest:***@127.0.0.1:1/")
    assert len(done.output.strip().splitlines()) == 1
    assert "secret" not in done.output
