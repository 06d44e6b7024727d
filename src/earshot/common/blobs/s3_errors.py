"""One place that turns botocore and connection failures into the blob port's errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from earshot.common.blobs import BlobError, BlobNotFound

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(exc: ClientError) -> str:
    """The S3 error code of a failed call (`NoSuchKey`, `404`, `InvalidRange`...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(*, bucket: str, key: str | None = None) -> Iterator[None]:
    """Raise `BlobNotFound` for a missing object and `BlobError` for every other S3 failure."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchBucket":
            raise BlobError(f"S3 bucket {bucket!r} does not exist") from exc
        if key is not None and code in _NOT_FOUND:
            raise BlobNotFound(key) from exc
        raise BlobError(f"S3 refused the request ({code or 'no code'}): {exc}") from exc
    # OSError covers timeouts and refused connections that get past botocore's own wrapping.
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
        raise BlobError(f"S3 is unreachable or failed: {exc}") from exc
