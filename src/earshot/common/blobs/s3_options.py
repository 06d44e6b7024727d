"""What an `s3://` storage URL says: bucket, endpoint, region, key prefix and upload tuning.

`s3://BUCKET?endpoint_url=URL&region=REGION&prefix=PREFIX&part_size_mb=8&create_bucket=1`.
Every query parameter is optional; an unknown one is refused so that a typo cannot go unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from earshot.common.blobs import BlobError

MiB = 1 << 20
MIN_PART_MB = 5  # S3's smallest part (all but the last)
MAX_PART_MB = 5 * 1024  # S3's largest part
DEFAULT_PART_MB = 8
MAX_PARTS = 10_000
AddressingStyle = Literal["path", "virtual", "auto"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PARAMS = frozenset(
    {
        "endpoint_url",
        "region",
        "prefix",
        "part_size_mb",
        "create_bucket",
        "addressing_style",
        "presign_endpoint_url",
    }
)
_STYLES: dict[str, AddressingStyle] = {"path": "path", "virtual": "virtual", "auto": "auto"}
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class S3Options:
    """Where the blobs live in S3 and how they are uploaded."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str = ""
    part_size_bytes: int = DEFAULT_PART_MB * MiB
    create_bucket: bool = False
    addressing_style: AddressingStyle = "auto"
    presign_endpoint_url: str | None = None

    @classmethod
    def from_url(cls, url: str) -> S3Options:
        """Parse `s3://BUCKET?...`; `BlobError` names what is wrong."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise BlobError(f"not an s3:// URL: {url!r}")
        if "@" in parts.netloc:
            raise BlobError(
                "s3:// URLs carry no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if parts.path not in ("", "/") or parts.fragment:
            raise BlobError("the s3:// URL names a bucket only; use prefix=... for a key prefix")
        bucket = parts.netloc
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise BlobError(f"invalid S3 bucket name {bucket!r}")
        params = _single_values(parts.query)
        endpoint_url = _endpoint("endpoint_url", params.get("endpoint_url"))
        return cls(
            bucket=bucket,
            endpoint_url=endpoint_url,
            region=params.get("region") or None,
            prefix=_normalise_prefix(params.get("prefix", "")),
            part_size_bytes=_part_size_mb(params.get("part_size_mb")) * MiB,
            create_bucket=_flag("create_bucket", params.get("create_bucket", "")),
            # A custom endpoint (MinIO, moto) rarely has wildcard DNS for bucket subdomains.
            addressing_style=_addressing_style(
                params.get("addressing_style", "path" if endpoint_url else "auto")
            ),
            presign_endpoint_url=_endpoint(
                "presign_endpoint_url", params.get("presign_endpoint_url")
            ),
        )

    def object_key(self, key: str) -> str:
        """The S3 object key of a blob key."""
        return self.prefix + key


def _single_values(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise BlobError(f"malformed s3:// URL query {query!r}") from exc
    unknown = sorted(set(parsed) - _PARAMS)
    if unknown:
        raise BlobError(f"unknown s3:// URL parameter(s) {unknown}; known: {sorted(_PARAMS)}")
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise BlobError(f"s3:// URL parameter(s) given twice: {repeated}")
    return {name: values[0] for name, values in parsed.items()}


def _endpoint(name: str, value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BlobError(f"{name} must be an http(s):// URL, not {value!r}")
    return value.rstrip("/")


def _normalise_prefix(prefix: str) -> str:
    """`a/b` and `/a/b/` both become `a/b/`; empty stays empty."""
    stripped = prefix.strip("/")
    if any(part in ("", ".", "..") for part in stripped.split("/")) and stripped:
        raise BlobError(f"invalid S3 key prefix {prefix!r}")
    return f"{stripped}/" if stripped else ""


def _part_size_mb(value: str | None) -> int:
    if value is None:
        return DEFAULT_PART_MB
    try:
        size = int(value)
    except ValueError:
        raise BlobError(f"part_size_mb must be a whole number, not {value!r}") from None
    if not MIN_PART_MB <= size <= MAX_PART_MB:
        raise BlobError(f"part_size_mb must be between {MIN_PART_MB} and {MAX_PART_MB}")
    return size


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in _TRUE | _FALSE:
        raise BlobError(f"{name} must be 1 or 0, not {value!r}")
    return lowered in _TRUE


def _addressing_style(value: str) -> AddressingStyle:
    style = _STYLES.get(value)
    if style is None:
        raise BlobError(f"addressing_style must be path, virtual or auto, not {value!r}")
    return style
