"""Every log line of a service is one structured record, its libraries' lines included."""

from __future__ import annotations

import json
import subprocess
import sys

EMIT = """
import logging, structlog
from earshot.common.logging import configure_logging
configure_logging(service="gateway", level="info", fmt="json")
structlog.get_logger().info("job.submitted", job_id="j-1")
logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
logging.getLogger("sqlalchemy.engine").info("below the library threshold: not shown")
try:
    raise ConnectionResetError("peer went away")
except ConnectionResetError:
    logging.getLogger("aio_pika").exception("connection lost")
"""


def test_library_warnings_come_out_as_json_with_the_service() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMIT], capture_output=True, text=True, timeout=60, check=True
    )

    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["event"], r["service"], r["level"]) for r in records] == [
        ("job.submitted", "gateway", "info"),
        ("Invalid HTTP request received.", "gateway", "warning"),
        ("connection lost", "gateway", "error"),
    ]
    assert records[0]["job_id"] == "j-1"
    assert records[1]["logger"] == "uvicorn.error"
    assert "ConnectionResetError: peer went away" in records[2]["exception"]
    assert all(r["timestamp"].endswith("Z") for r in records)
