"""The mail port: send one email.

Adapters: `outbox` (`.eml` files in a folder; the default) and `smtp` (aiosmtplib).
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


class MailError(Exception):
    """Sending failed. `permanent` when retrying cannot help (a rejected recipient)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    """Delivers an email; sending one Message-ID twice is harmless where the adapter allows."""

    async def send(self, message: EmailMessage) -> None: ...

    async def check(self) -> None: ...


def open_mailer(url: str, *, outbox_dir: Path) -> Mailer:
    """`smtp://user:pass@host:port?starttls=1`, `smtps://...`, or empty for the outbox folder."""
    if not url:
        from earshot.common.mail.outbox import OutboxMailer

        return OutboxMailer(outbox_dir)
    if url.startswith(("smtp://", "smtps://")):
        from earshot.common.mail.smtp import SmtpMailer

        return SmtpMailer.from_url(url)
    scheme = url.split(":", 1)[0]
    raise MailError(f"unsupported SMTP URL scheme {scheme!r} (supported: smtp://, smtps://)")
