"""The converter's entry point: build adapters from settings, consume jobs until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import structlog

from earshot.common.blobs import open_blob_store
from earshot.common.logging import configure_logging
from earshot.common.messages import JOBS_QUEUE
from earshot.common.queue import MessageQueue, open_queue
from earshot.common.worker import run_consumer
from earshot.converter.arguments import FfmpegConfig, locate_ffmpeg
from earshot.converter.settings import ConverterSettings
from earshot.converter.worker import ConversionWorker, ProcessWorkDir, remove_stale_work

# A job dir older than the time limit plus this margin cannot belong to a live conversion.

_log = structlog.get_logger()


def run(settings: ConverterSettings) -> None:
    """Run the converter until SIGTERM/SIGINT; the current jobs finish or are handed back."""
    configure_logging(service="converter", level=settings.log_level, fmt=settings.log_format)
    # A second signal cancels `serve` on purpose (jobs are handed back), and a SIGINT during
    # start-up interrupts it before the handlers exist: both are still a clean exit.
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(serve(settings))


async def serve(settings: ConverterSettings, *, stop: asyncio.Event | None = None) -> None:
    """Consume the `video` queue until `stop` is set (or a signal arrives), then close all."""
    stop = stop if stop is not None else asyncio.Event()
    ffmpeg = FfmpegConfig(
        executable=locate_ffmpeg(settings.ffmpeg_path),
        timeout_seconds=settings.conversion_timeout_seconds,
        threads=settings.ffmpeg_threads,
    )
    removed = await asyncio.to_thread(remove_stale_work, settings.resolved_work_dir)
    own_work_dir = ProcessWorkDir.claim(settings.resolved_work_dir)
    async with contextlib.AsyncExitStack() as resources:
        resources.callback(own_work_dir.release)
        queue = open_queue(
            settings.broker_url,
            poll_seconds=settings.queue_poll_seconds,
            lease_seconds=settings.queue_lease_seconds,
            max_deliveries=settings.queue_max_deliveries,
        )
        resources.push_async_callback(queue.close)
        # Remote stores' local copies of inputs live in this process's own work dir, so a
        # SIGKILLed converter's copies are removed by the next converter to start.
        blobs = open_blob_store(settings.storage_url, temp_dir=own_work_dir.path)
        resources.push_async_callback(blobs.close)
        worker = ConversionWorker(
            queue=queue,
            blobs=blobs,
            ffmpeg=ffmpeg,
            work_dir=own_work_dir.path,
            progress_interval_seconds=settings.progress_interval_seconds,
        )
        _log.info("converter.started", ffmpeg=ffmpeg.executable, stale_work_removed=removed)
        with _stop_on_signals(stop):
            await _consume(settings, queue=queue, worker=worker, stop=stop)
    _log.info("converter.stopped")


async def _consume(
    settings: ConverterSettings,
    *,
    queue: MessageQueue,
    worker: ConversionWorker,
    stop: asyncio.Event,
) -> None:
    await run_consumer(
        queue,
        JOBS_QUEUE,
        worker.handle,
        stop=stop,
        max_attempts=settings.converter_max_attempts,
        backoff_base_seconds=settings.converter_retry_backoff_base_seconds,
        backoff_max_seconds=settings.converter_retry_backoff_max_seconds,
        on_give_up=worker.give_up,
        concurrency=settings.converter_concurrency,
        grace_seconds=settings.shutdown_grace_seconds,
    )


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`; a second signal cancels the in-flight jobs at once."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if stop.is_set() and main_task is not None:
            _log.warning("converter.forced_stop", signal=signal.Signals(signum).name)
            main_task.cancel()
            return
        _log.info("converter.stopping", signal=signal.Signals(signum).name)
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
