"""An in-process SMTP server on 127.0.0.1 (aiosmtpd) recording what it receives, for mail tests."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.net import free_port


class _RecordingHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.sink.rejected_recipients:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.sink.received.append(message)
        self.sink.envelope_recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start/stop an SMTP server; `received` holds every accepted message, parsed."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[EmailMessage] = []
        self.envelope_recipients: list[list[str]] = []
        self.rejected_recipients: set[str] = set()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """The earshot SMTP URL that reaches this server (plain SMTP, short timeout)."""
        return f"smtp://127.0.0.1:{self.port}?starttls=0&timeout=5"

    def start(self) -> None:
        """Listen on the port (again, after a stop)."""
        controller = Controller(_RecordingHandler(self), hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: connections are refused until the next start."""
        if self._controller is not None:
            self._controller.stop()
            self._controller.loop.close()
            self._controller = None
