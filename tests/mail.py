"""Reading the emails earshot wrote, whichever way they went (an outbox folder or SMTP)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path


def read_email(path: Path) -> EmailMessage:
    """One `.eml` file, parsed."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def read_outbox(folder: Path) -> list[EmailMessage]:
    """The emails in an outbox folder, parsed, in file-name order."""
    return [read_email(path) for path in sorted(folder.glob("*.eml"))]


def plain_text(message: EmailMessage) -> str:
    """The plain-text body, with LF line ends: SMTP carries CRLF, a folder keeps LF."""
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")
