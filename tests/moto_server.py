"""Moto's standalone S3 server as a subprocess on a loopback port, and throw-away test buckets.

`with MotoServer() as moto:` starts `python -m moto.server` on a free port, waits until it answers
HTTP and stops it on exit (its state lives in memory: a restarted server is empty). `TestBucket`
names a unique bucket, inspects its unfinished multipart uploads and deletes it with its contents.
Moto accepts any credentials; `TEST_CREDENTIALS` are the ones the tests hand to earshot.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config

from tests.net import free_port

TEST_REGION = "eu-west-1"
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables of a developer's own AWS set-up that would otherwise leak into the tests.
FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def use_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto's credential chain at the fixed test credentials for one test."""
    for name in FOREIGN_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


class MotoServer:
    """One moto S3 server process; `endpoint_url` is where it listens."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.endpoint_url = f"http://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self, *, timeout_seconds: float = 30.0) -> str:
        """Start the server and wait until it answers; its endpoint URL."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open until stop() closes it
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **TEST_CREDENTIALS},
        )
        deadline = time.monotonic() + timeout_seconds
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self._output()
                self.stop()
                raise RuntimeError(f"moto S3 server did not start on {self.endpoint_url}: {output}")
            time.sleep(0.05)
        return self.endpoint_url

    def answers(self) -> bool:
        """True when the server answers an HTTP request."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            connection.request("GET", "/moto-api/")
            connection.getresponse().read()
        except OSError:
            return False
        finally:
            connection.close()
        return True

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return bytes(self._log.read()[-2000:]).decode(errors="replace")


class TestBucket:
    """A uniquely named bucket on a moto server, seen through a plain (synchronous) boto3 client."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, endpoint_url: str, *, region: str = TEST_REGION) -> None:
        self.endpoint_url, self.region = endpoint_url, region
        self.name = f"earshot-test-{uuid.uuid4().hex[:16]}"
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def storage_url(self, **params: str) -> str:
        """The `s3://` URL of this bucket on the server, with extra query parameters."""
        query = {"endpoint_url": self.endpoint_url, "region": self.region, **params}
        return f"s3://{self.name}?{urlencode(query)}"

    def unfinished_uploads(self) -> list[str]:
        """`key?uploadId=...` of every multipart upload neither completed nor aborted."""
        try:
            found = self.client.list_multipart_uploads(Bucket=self.name)
        except self.client.exceptions.NoSuchBucket:
            return []
        return [f"{item['Key']}?uploadId={item['UploadId']}" for item in found.get("Uploads", [])]

    def destroy(self) -> None:
        """Abort its uploads, delete its objects and the bucket itself; close the client."""
        try:
            for item in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.name, Key=item["Key"], UploadId=item["UploadId"]
                )
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
                for item in page.get("Contents", []):
                    self.client.delete_object(Bucket=self.name, Key=item["Key"])
            self.client.delete_bucket(Bucket=self.name)
        except self.client.exceptions.NoSuchBucket:
            pass
        finally:
            self.client.close()
