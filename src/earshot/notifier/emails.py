"""The text of notification emails, built only from the `JobFinished` message.

The Message-ID and Date derive from the event, so a resent email is byte-for-byte the same one:
the outbox keeps one file per event and mail clients that see it twice can recognise the duplicate.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime

from earshot.common.messages import JobFinished

SUCCESS_SUBJECT = "MP3 Download"
MESSAGE_ID_DOMAIN = "earshot"
_MAX_NAME_CHARS = 200
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def event_id(event: JobFinished) -> str:
    """The key of one job outcome: at most one email is sent per key."""
    return f"{event.job_id}:{event.outcome}"


def message_id(event: JobFinished) -> str:
    """The deterministic Message-ID of the email about `event`."""
    local = _NOT_ID_CHARS.sub("-", f"{event.job_id}.{event.outcome}").strip(".") or "job"
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def _one_line(text: str) -> str:
    # A file name is user input: no line breaks may reach a header (header injection).
    cleaned = _CONTROL_CHARS.sub(" ", text).strip() or "your file"
    return cleaned if len(cleaned) <= _MAX_NAME_CHARS else cleaned[: _MAX_NAME_CHARS - 1] + "…"


def _success_body(event: JobFinished, name: str) -> str:
    link = event.download_url or f"GET /download?fid={event.mp3_fid}"
    return (
        "Hello,\n\n"
        f'Your file "{name}" has been converted.\n\n'
        f"mp3 file_id: {event.mp3_fid} is now ready!\n\n"
        f"Download it (signed in as {event.username}):\n{link}\n\n"
        f"Job: {event.job_id}\n\n"
        "-- \nearshot\n"
    )


def _failure_body(event: JobFinished, name: str) -> str:
    reason = (event.error or "").strip() or "unknown error"
    return (
        "Hello,\n\n"
        f'Your file "{name}" could not be converted.\n\n'
        f"Reason: {reason}\n\n"
        f"Job: {event.job_id}\n\n"
        "-- \nearshot\n"
    )


def build_email(event: JobFinished, *, mail_from: str) -> EmailMessage:
    """The plain-text email telling `event.username` how their job ended."""
    name = _one_line(event.original_filename)
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = event.username
    message["Message-ID"] = message_id(event)
    message["Date"] = format_datetime(event.occurred_at)
    if event.outcome == "succeeded":
        message["Subject"] = SUCCESS_SUBJECT
        body = _success_body(event, name)
    else:
        message["Subject"] = f"Conversion failed: {name}"
        body = _failure_body(event, name)
    # Quoted-printable keeps non-ASCII names readable by servers without 8BITMIME.
    message.set_content(body, cte="quoted-printable")
    return message
