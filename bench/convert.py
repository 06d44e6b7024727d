"""Benchmark: earshot's conversion against plain ffmpeg on a 10-minute 720p H.264/AAC file.

Two earshot paths are timed against the same raw ffmpeg command, alternating runs:
- `convert()`: argument building, the ffmpeg subprocess with `-progress` parsing, output facts;
- the converter's whole job: a `JobSubmitted` taken from the embedded queue, the input read from the
  folder blob store, conversion, the output stored, `JobSucceeded` published, the message acked.
Prints the best and the median wall time of each, and the ratio of the best times to raw ffmpeg's
(target <= 1.10 for both): noise on a shared machine only ever adds time, so the best of N runs is
the steadiest estimate of what each path costs (as `timeit` advises); medians are shown beside it.
Run with `make bench`; the input is generated once into var/bench/ (no media in the repo).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from earshot.common.blobs.folder import FolderBlobStore
from earshot.common.logging import configure_logging
from earshot.common.messages import (
    JOB_EVENTS_QUEUE,
    JOBS_QUEUE,
    ConversionOptions,
    JobSubmitted,
    JobSucceeded,
)
from earshot.common.queue.embedded import EmbeddedQueue
from earshot.converter.arguments import FfmpegConfig, locate_ffmpeg
from earshot.converter.convert import convert
from earshot.converter.worker import ConversionWorker

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.10


def make_input(path: Path, *, seconds: int, ffmpeg: str) -> Path:
    """A 720p H.264/AAC mp4 made from lavfi sources (cached between runs)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {seconds}s of 720p H.264/AAC into {path} (once)...", flush=True)
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "160k", "-shortest", str(partial),
        ],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return path


def time_raw_ffmpeg(ffmpeg: str, source: Path, out: Path) -> float:
    """The reference command from the issue."""
    started = time.perf_counter()
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-i", str(source),
         "-vn", "-c:a", "libmp3lame", "-q:a", "2", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def time_earshot(ffmpeg: str, source: Path, out: Path, duration: float) -> float:
    """earshot's converter path: argument building, progress parsing, output stat."""
    progress: list[float] = []

    async def on_progress(percent: float) -> None:
        progress.append(percent)

    started = time.perf_counter()
    asyncio.run(
        convert(
            source,
            out,
            options=ConversionOptions(),
            ffmpeg=FfmpegConfig(executable=ffmpeg, timeout_seconds=3600),
            input_duration_seconds=duration,
            input_audio_codec="aac",
            on_progress=on_progress,
        )
    )
    elapsed = time.perf_counter() - started
    assert progress and progress[-1] > 99, "progress was not reported"
    return elapsed


async def _worker_job(ffmpeg: str, source: Path, root: Path, duration: float) -> float:
    blobs = FolderBlobStore(root / "blobs")
    queue = EmbeddedQueue(str(root / "queue.db"), poll_seconds=0.05)
    try:
        # The upload is the gateway's work, not the converter's: stored before the clock starts.
        await blobs.put_file("videos/bench", source)
        job = JobSubmitted(
            job_id="bench",
            user_id="u-bench",
            username="bench@earshot.local",
            video_fid="bench",
            mp3_fid="bench-out",
            input_key="videos/bench",
            output_key="audio/bench-out.mp3",
            original_filename=source.name,
            input_audio_codec="aac",
            input_duration_seconds=duration,
        )
        await queue.publish(JOBS_QUEUE, job.to_bytes(), message_id="bench:submitted")
        worker = ConversionWorker(
            queue=queue,
            blobs=blobs,
            ffmpeg=FfmpegConfig(executable=ffmpeg, timeout_seconds=3600),
            work_dir=root / "work",
            progress_interval_seconds=1.0,
        )
        started = time.perf_counter()
        async for delivery in queue.consume(JOBS_QUEUE):
            await worker.handle(delivery)
            await delivery.ack()
            break
        elapsed = time.perf_counter() - started
        async for event in queue.consume(JOB_EVENTS_QUEUE):
            await event.ack()
            if b'"job.succeeded"' in event.body:
                assert JobSucceeded.model_validate_json(event.body).output_bytes > 0
                return elapsed
        raise AssertionError("the job did not succeed")
    finally:
        await queue.close()
        await blobs.close()


def time_worker_job(ffmpeg: str, source: Path, root: Path, duration: float) -> float:
    """The converter's handler on one queued job, from delivery to ack."""
    root.mkdir(parents=True)
    return asyncio.run(_worker_job(ffmpeg, source, root, duration))


def report(name: str, times: list[float], raw_best: float) -> bool:
    """Print one row; True when within the target."""
    best, median = min(times), statistics.median(times)
    ratio = best / raw_best
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER"
    runs = ", ".join(f"{t:.2f}" for t in times)
    times_text = f"best {best:6.2f}s median {median:6.2f}s"
    print(f"{name:<22} {times_text} ratio {ratio:.3f} {verdict:<4} runs {runs}")
    return ratio <= TARGET_RATIO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=600, help="input duration")
    parser.add_argument("--runs", type=int, default=7, help="runs of each, alternating")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var" / "bench", help="input cache")
    args = parser.parse_args()
    configure_logging(service="bench", level="warning", fmt="console")
    ffmpeg = locate_ffmpeg()
    source = make_input(
        args.work_dir / f"720p-{args.seconds}s.mp4", seconds=args.seconds, ffmpeg=ffmpeg
    )
    raw_times: list[float] = []
    convert_times: list[float] = []
    job_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            raw_times.append(time_raw_ffmpeg(ffmpeg, source, Path(tmp) / f"raw{run}.mp3"))
            convert_times.append(
                time_earshot(ffmpeg, source, Path(tmp) / f"es{run}.mp3", args.seconds)
            )
            job_times.append(time_worker_job(ffmpeg, source, Path(tmp) / f"job{run}", args.seconds))
    raw_best = min(raw_times)
    print(f"input: {args.seconds}s 720p H.264/AAC -> MP3 (-q:a 2), {args.runs} runs, {ffmpeg}")
    raw_runs = ", ".join(f"{t:.2f}" for t in raw_times)
    raw_median = statistics.median(raw_times)
    times_text = f"best {raw_best:6.2f}s median {raw_median:6.2f}s"
    print(f"{'raw ffmpeg':<22} {times_text} {'':16} runs {raw_runs}")
    within = [
        report("earshot convert()", convert_times, raw_best),
        report("earshot converter job", job_times, raw_best),
    ]
    print(f"target: best earshot / best raw <= {TARGET_RATIO:.2f}")
    return 0 if all(within) else 1


if __name__ == "__main__":
    sys.exit(main())
