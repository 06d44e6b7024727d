"""The S3 store's aioboto3 session and clients: opened on first use, closed together."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from earshot.common.blobs.s3_errors import error_code, s3_errors
from earshot.common.blobs.s3_options import S3Options

_BUCKET_IS_THERE = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


class S3Clients:
    """One session; one client for the store's endpoint, another only to presign for clients."""

    def __init__(
        self,
        options: S3Options,
        *,
        max_attempts: int,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        max_pool_connections: int,
    ) -> None:
        self._options = options
        self._session = aioboto3.Session()
        self._config = AioConfig(
            # SigV4 everywhere: newer regions and MinIO accept nothing else, presigned URLs too.
            signature_version="s3v4",
            s3={"addressing_style": options.addressing_style},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
            max_pool_connections=max_pool_connections,
        )
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()
        self._clients: dict[str | None, Any] = {}
        self._bucket_ready = not options.create_bucket

    async def get(self, endpoint_url: str | None = None) -> Any:
        """The client for `endpoint_url` (None: the store's endpoint), opened on first use."""
        endpoint_url = endpoint_url or self._options.endpoint_url
        client = self._clients.get(endpoint_url)
        if client is not None and self._bucket_ready:
            return client
        async with self._lock:
            if not self._bucket_ready:
                await self._create_bucket(await self._open(self._options.endpoint_url))
                self._bucket_ready = True
            return await self._open(endpoint_url)

    async def close(self) -> None:
        """Close every client (their HTTP connection pools); `get` opens new ones."""
        async with self._lock:
            self._clients.clear()
            await self._stack.aclose()
            self._stack = AsyncExitStack()

    async def _open(self, endpoint_url: str | None) -> Any:
        if endpoint_url not in self._clients:
            self._clients[endpoint_url] = await self._stack.enter_async_context(
                self._session.client(
                    "s3",
                    endpoint_url=endpoint_url,
                    region_name=self._options.region,
                    config=self._config,
                )
            )
        return self._clients[endpoint_url]

    async def _create_bucket(self, client: Any) -> None:
        """Create the bucket unless it exists (`create_bucket=1`, development only)."""
        extra: dict[str, Any] = {}
        if self._options.region not in (None, "us-east-1"):
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._options.region}
        with s3_errors(bucket=self._options.bucket):
            try:
                await client.create_bucket(Bucket=self._options.bucket, **extra)
            except ClientError as exc:
                if error_code(exc) not in _BUCKET_IS_THERE:
                    raise
