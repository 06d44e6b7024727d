"""The embedded mail adapter: each message becomes one `.eml` file in a folder (the outbox).

The file name comes from the Message-ID, so sending the same message again replaces the file instead
of adding a second one. Files appear whole: written to a hidden temp file, then renamed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from earshot.common.mail import MailError

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._@+-]+")
_MAX_STEM_CHARS = 120


def eml_file_name(message_id: str) -> str:
    """The outbox file name for a Message-ID: readable, filesystem-safe, one name per id."""
    readable = _UNSAFE_NAME_CHARS.sub("_", message_id.strip().strip("<>"))[:_MAX_STEM_CHARS]
    # Two ids that differ only in unsafe characters must not share a file.
    digest = hashlib.sha256(message_id.strip().encode()).hexdigest()[:12]
    return f"{readable.lstrip('.')}-{digest}.eml"


class OutboxMailer:
    """Writes messages as `.eml` files into `outbox_dir` (created on first use)."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = Path(outbox_dir)

    async def send(self, message: EmailMessage) -> None:
        """Write `message` atomically; the same Message-ID always lands in the same file."""
        if message["Message-ID"] is None:
            message["Message-ID"] = make_msgid(domain="earshot")
        name = eml_file_name(str(message["Message-ID"]))
        try:
            data = message.as_bytes()
        except (ValueError, UnicodeError) as exc:
            raise MailError(f"cannot serialise the message: {exc}", permanent=True) from exc
        try:
            await asyncio.to_thread(self._write_atomically, name, data)
        except OSError as exc:
            raise MailError(f"cannot write to the outbox {self.outbox_dir}: {exc}") from exc

    async def check(self) -> None:
        """Raise `MailError` unless the outbox folder exists (or can be made) and is writable."""
        try:
            await asyncio.to_thread(self._probe)
        except OSError as exc:
            raise MailError(f"outbox {self.outbox_dir} is not writable: {exc}") from exc

    def _write_atomically(self, name: str, data: bytes) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        temp = self.outbox_dir / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with temp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.outbox_dir / name)
        finally:
            temp.unlink(missing_ok=True)
        self._fsync_folder()

    def _probe(self) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        probe = self.outbox_dir / f".probe.{uuid.uuid4().hex}.tmp"
        try:
            probe.write_bytes(b"")
        finally:
            probe.unlink(missing_ok=True)

    def _fsync_folder(self) -> None:
        # The rename is durable only once the folder entry is; not every platform can open a folder.
        try:
            fd = os.open(self.outbox_dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            return
        finally:
            os.close(fd)
