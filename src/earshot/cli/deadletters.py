"""`earshot dead-letters`: list and redrive the messages a queue gave up on.

Works on whichever broker `EARSHOT_BROKER_URL` names (the embedded queue or RabbitMQ). A redriven
message is delivered afresh (attempt 1) to the queue's consumers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer

from earshot.cli.errors import fail
from earshot.common.messages import ALL_QUEUES, dead_letter_queue
from earshot.common.queue import MessageQueue, open_queue
from earshot.common.settings import CommonSettings

# More than any sane backlog; keeps one listing's memory bounded.
REDRIVE_ALL_LIMIT = 10_000

app = typer.Typer(
    help="List and redrive dead-lettered messages.", no_args_is_help=True, add_completion=False
)
QueueArgument = Annotated[str, typer.Argument(help=f"The queue: {', '.join(ALL_QUEUES)}.")]


@app.command("list")
def list_dead_letters(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array, bodies included.")
    ] = False,
) -> None:
    """Show a queue's dead-lettered messages: message id, job id, reason. They stay where they are.

    On RabbitMQ, listed messages go back behind the others: past `--limit`, listings page through.
    """
    _require_known(queue)
    try:
        dead = asyncio.run(_list(queue, limit))
    except Exception as exc:  # every failure becomes one clear line, never a traceback
        fail(exc)
    rows = [
        {"message_id": message_id, "job_id": _job_id(body), "reason": reason, "body": _text(body)}
        for message_id, body, reason in dead
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo(f"no dead letters in {dead_letter_queue(queue)}")
    else:
        typer.echo("MESSAGE ID\tJOB ID\tREASON")
        for row in rows:
            typer.echo(f"{row['message_id']}\t{row['job_id'] or '-'}\t{row['reason']}")


@app.command("redrive")
def redrive(
    queue: QueueArgument,
    message_id: Annotated[
        str | None, typer.Argument(help="The message to move back (see `list`).")
    ] = None,
    redrive_all: Annotated[
        bool, typer.Option("--all", help="Move every dead-lettered message back.")
    ] = False,
) -> None:
    """Move one dead-lettered message (or all of them) back to its queue, delivered afresh."""
    _require_known(queue)
    if (message_id is not None) == redrive_all:
        fail(ValueError("name one MESSAGE_ID or pass --all (not both)"))
    try:
        moved, missing = asyncio.run(_redrive(queue, message_id))
    except Exception as exc:  # every failure becomes one clear line, never a traceback
        fail(exc)
    if missing:
        fail(LookupError(f"{missing} is not in {dead_letter_queue(queue)}"), code=1)
    typer.echo(f"redrove {moved} message{'' if moved == 1 else 's'} to {queue}")


@asynccontextmanager
async def _opened() -> AsyncIterator[MessageQueue]:
    settings = CommonSettings()
    queue = open_queue(
        settings.broker_url,
        poll_seconds=settings.queue_poll_seconds,
        lease_seconds=settings.queue_lease_seconds,
        max_deliveries=settings.queue_max_deliveries,
    )
    try:
        yield queue
    finally:
        await queue.close()


async def _list(queue: str, limit: int) -> list[tuple[str, bytes, str]]:
    async with _opened() as broker:
        return await broker.dead_letters(queue, limit=limit)


async def _redrive(queue: str, message_id: str | None) -> tuple[int, str | None]:
    """How many were moved, and the named message if it was not there.

    Goes through the gateway's own redrive, so a dead-lettered job is reopened in the jobs
    database before its message goes back (the converter's report then moves it again).
    """
    from earshot.common.blobs import open_blob_store
    from earshot.common.db import create_engine, session_factory
    from earshot.gateway.admin import RedriveError
    from earshot.gateway.admin import redrive as gateway_redrive
    from earshot.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    engine = create_engine(settings.jobs_database_url)
    blobs = open_blob_store(settings.storage_url)
    try:
        async with _opened() as broker:
            if message_id is not None:
                wanted = [message_id]
            else:
                # A snapshot: a message that dies again meanwhile waits for the next redrive.
                wanted = [
                    mid for mid, _, _ in await broker.dead_letters(queue, limit=REDRIVE_ALL_LIMIT)
                ]
            moved = 0
            for wanted_id in wanted:
                try:
                    await gateway_redrive(
                        session_factory(engine),
                        broker,
                        blobs,
                        queue_name=queue,
                        message_id=wanted_id,
                    )
                except RedriveError as exc:
                    if exc.status == 404 and message_id is not None:
                        return 0, message_id
                    raise
                moved += 1
            return moved, None
    finally:
        await blobs.close()
        await engine.dispose()


def _require_known(queue: str) -> None:
    # On RabbitMQ a typo would declare a new queue; refuse it instead.
    if queue not in ALL_QUEUES:
        fail(ValueError(f"unknown queue {queue!r} (known: {', '.join(ALL_QUEUES)})"))


def _job_id(body: bytes) -> str | None:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    job_id = decoded.get("job_id") if isinstance(decoded, dict) else None
    return job_id if isinstance(job_id, str) else None


def _text(body: bytes) -> str:
    return body.decode(errors="replace")
