"""`make bench` keeps working: the benchmark runs both earshot paths on a short generated clip.

Only that it runs and reports is checked here; its speed target is for `make bench` on the
10-minute input, never for a unit test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "convert.py"


def test_the_benchmark_times_every_path_against_raw_ffmpeg(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--seconds", "3", "--runs", "1", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode in (0, 1), done.stderr  # 1 is a missed target, not a crash
    assert re.search(r"^raw ffmpeg +best +\d+\.\d+s median", done.stdout, re.M), done.stdout
    for path in ("earshot convert()", "earshot converter job"):
        assert re.search(rf"^{re.escape(path)} +best .* ratio \d\.\d{{3}}", done.stdout, re.M)
    assert (tmp_path / "720p-3s.mp4").stat().st_size > 0
