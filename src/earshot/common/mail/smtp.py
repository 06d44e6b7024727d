"""The SMTP mail adapter (aiosmtplib): `smtp://` with optional STARTTLS, `smtps://` implicit TLS.

URL: `smtp[s]://[user[:password]@]host[:port][?starttls=1|0&timeout=SECONDS&verify=1|0]`; user
and password are percent-decoded. Without `starttls`, `smtp://` upgrades when the server offers it.
Failures become `MailError`: permanent for 5xx rejections of the sender, a recipient or the message,
transient for everything else (connection refused, timeouts, 4xx, authentication), which may heal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib
import structlog

from earshot.common.mail import MailError

DEFAULT_TIMEOUT_SECONDS = 10.0
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_KNOWN_OPTIONS = frozenset({"starttls", "timeout", "verify"})

log = structlog.get_logger()


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise MailError(f"SMTP URL option {name}={value!r} must be 1 or 0")


def _options(query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise MailError(f"unknown SMTP URL option(s) {unknown} (known: {sorted(_KNOWN_OPTIONS)})")
    return options


def _default_port(*, implicit_tls: bool, start_tls: bool | None) -> int:
    if implicit_tls:
        return 465
    return 587 if start_tls else 25


def _is_permanent(exc: aiosmtplib.SMTPException) -> bool:
    """5xx refusals of the sender, every recipient or the message itself; retrying cannot help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    rejection = (
        aiosmtplib.SMTPRecipientRefused,
        aiosmtplib.SMTPSenderRefused,
        aiosmtplib.SMTPDataError,
    )
    return isinstance(exc, rejection) and exc.code >= 500


@dataclass(frozen=True, kw_only=True)
class SmtpMailer:
    """Sends each message over a fresh SMTP connection (a notifier sends rarely)."""

    hostname: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    start_tls: bool | None = None
    validate_certs: bool = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        """Parse `smtp://user:pass@host:port?starttls=1&timeout=10` or `smtps://...`."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise MailError(f"SMTP URL must start with smtp:// or smtps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise MailError("SMTP URL has no host")
        options = _options(parts.query)
        implicit_tls = parts.scheme == "smtps"
        start_tls = _flag("starttls", options["starttls"]) if "starttls" in options else None
        try:
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT_SECONDS))
            port = parts.port
        except ValueError as exc:
            raise MailError(f"malformed SMTP URL: {exc}") from exc
        if timeout <= 0:
            raise MailError("SMTP URL option timeout must be a positive number of seconds")
        return cls(
            hostname=parts.hostname,
            port=port or _default_port(implicit_tls=implicit_tls, start_tls=start_tls),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=implicit_tls,
            start_tls=False if implicit_tls else start_tls,
            validate_certs=_flag("verify", options.get("verify", "1")),
            timeout_seconds=timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to its To/Cc/Bcc recipients, or raise `MailError`."""
        try:
            refused, _reply = await aiosmtplib.send(message, **self._connection_options())
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._error("send", exc) from exc
        except ValueError as exc:
            # No sender or recipient in the headers: this message can never be sent.
            raise MailError(f"cannot send the message: {exc}", permanent=True) from exc
        if refused:
            # Some recipients got it: reporting failure would make a retry send it to them again.
            log.warning("smtp_recipients_refused", refused={k: str(v) for k, v in refused.items()})

    async def check(self) -> None:
        """Connect, log in if configured, say NOOP and quit; raise `MailError` on any failure."""
        client = aiosmtplib.SMTP(**self._connection_options())
        try:
            async with client:
                await client.noop()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._error("check", exc) from exc

    def _connection_options(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "use_tls": self.implicit_tls,
            "start_tls": self.start_tls,
            "validate_certs": self.validate_certs,
            "timeout": self.timeout_seconds,
        }

    def _error(self, action: str, exc: Exception) -> MailError:
        permanent = isinstance(exc, aiosmtplib.SMTPException) and _is_permanent(exc)
        where = f"{self.hostname}:{self.port}"
        return MailError(f"SMTP {action} via {where} failed: {exc}", permanent=permanent)
