"""Benchmark: earshot's conversion path against plain ffmpeg on a 10-minute 720p H.264/AAC file.

Prints the median wall time of each over several alternating runs and their ratio (target <= 1.10).
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

from earshot.common.messages import ConversionOptions
from earshot.converter.convert import convert
from earshot.converter.ffmpeg import FfmpegConfig, locate_ffmpeg

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=600, help="input duration")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    args = parser.parse_args()
    ffmpeg = locate_ffmpeg()
    source = make_input(
        ROOT / "var" / "bench" / f"720p-{args.seconds}s.mp4", seconds=args.seconds, ffmpeg=ffmpeg
    )
    raw_times: list[float] = []
    earshot_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            raw_times.append(time_raw_ffmpeg(ffmpeg, source, Path(tmp) / f"raw{run}.mp3"))
            earshot_times.append(
                time_earshot(ffmpeg, source, Path(tmp) / f"es{run}.mp3", args.seconds)
            )
    raw, ours = statistics.median(raw_times), statistics.median(earshot_times)
    ratio = ours / raw
    print(f"ffmpeg:  {args.seconds}s 720p H.264/AAC -> MP3 (-q:a 2) using {ffmpeg}")
    print(f"raw ffmpeg  median {raw:7.2f}s  runs {', '.join(f'{t:.2f}' for t in raw_times)}")
    print(f"earshot     median {ours:7.2f}s  runs {', '.join(f'{t:.2f}' for t in earshot_times)}")
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER"
    print(f"ratio earshot/raw = {ratio:.3f}  (target <= {TARGET_RATIO:.2f}): {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
