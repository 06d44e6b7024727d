"""Background loops run by the app's lifespan: outbox relay, job events, housekeeping.

Each loop is supervised: a bug or a closed queue must not silently stop job events or the relay for
the rest of the process's life, so a loop that ends early or crashes is restarted after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from earshot.common.messages import JOB_EVENTS_QUEUE
from earshot.common.worker import run_consumer
from earshot.gateway.deps import Gateway
from earshot.gateway.events import JobEventHandler
from earshot.gateway.housekeeping import run_housekeeping

SHUTDOWN_GRACE_SECONDS = 10.0
EVENT_BACKOFF_BASE_SECONDS = 1.0
EVENT_BACKOFF_MAX_SECONDS = 60.0
RESTART_DELAY_SECONDS = 1.0
_log = structlog.get_logger()

Loop = Callable[[], Awaitable[None]]


def background_loops(gateway: Gateway, stop: asyncio.Event) -> dict[str, Loop]:
    """The loops to run while the app serves, by name; each returns once `stop` is set."""
    settings = gateway.settings
    handler = JobEventHandler(
        gateway.sessions,
        gateway.blobs,
        gateway.relay,
        public_url=settings.public_url,
        metrics=gateway.metrics,
    )
    return {
        "outbox-relay": lambda: gateway.relay.run(stop),
        "job-events": lambda: run_consumer(
            gateway.queue,
            JOB_EVENTS_QUEUE,
            handler,
            stop=stop,
            max_attempts=settings.events_max_attempts,
            backoff_base_seconds=EVENT_BACKOFF_BASE_SECONDS,
            backoff_max_seconds=EVENT_BACKOFF_MAX_SECONDS,
            grace_seconds=SHUTDOWN_GRACE_SECONDS,
        ),
        "housekeeping": lambda: run_housekeeping(
            gateway.sessions,
            gateway.blobs,
            stop=stop,
            every_seconds=settings.orphan_sweep_seconds,
            older_than_seconds=settings.orphan_input_seconds,
        ),
    }


@contextlib.asynccontextmanager
async def running_in_background(gateway: Gateway) -> AsyncIterator[None]:
    """Run every background loop inside the context; stop them all (with a grace) on exit."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_supervised(name, loop, stop), name=name)
        for name, loop in background_loops(gateway, stop).items()
    ]
    try:
        yield
    finally:
        stop.set()
        _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS * 1.5)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _supervised(name: str, loop: Loop, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await loop()
        except Exception:
            _log.exception("gateway.background_loop_crashed", loop=name)
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_DELAY_SECONDS)
