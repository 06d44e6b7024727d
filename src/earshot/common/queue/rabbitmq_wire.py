"""What earshot puts on a RabbitMQ message besides the body, and how it reads it back."""

from __future__ import annotations

from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractIncomingMessage

# Deliveries before this copy was published (retries republish; a redrive starts again at 0).
ATTEMPTS_HEADER = "earshot-attempts"
# Why a message was dead-lettered by earshot (the broker's own dead-lettering sets `x-death`).
REASON_HEADER = "earshot-reason"
# Set by quorum queues: how often this copy was returned (nack, channel or connection lost).
DELIVERY_COUNT_HEADER = "x-delivery-count"


def build_message(
    body: bytes,
    *,
    message_id: str,
    attempts: int,
    reason: str | None = None,
    expiration_seconds: float | None = None,
) -> Message:
    """A persistent message carrying `message_id` and earshot's headers."""
    headers: dict[str, Any] = {ATTEMPTS_HEADER: attempts}
    if reason is not None:
        headers[REASON_HEADER] = reason
    return Message(
        body,
        message_id=message_id,
        headers=headers,
        delivery_mode=DeliveryMode.PERSISTENT,
        expiration=expiration_seconds,
    )


def attempt_of(message: AbstractIncomingMessage) -> int:
    """1 + returns of this copy + deliveries before it was republished."""
    headers = message.headers or {}
    return 1 + _count(headers.get(DELIVERY_COUNT_HEADER)) + _count(headers.get(ATTEMPTS_HEADER))


def reason_of(message: AbstractIncomingMessage) -> str:
    """Why a message is in a dead-letter queue, in words."""
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if isinstance(reason, bytes):
        return reason.decode(errors="replace")
    if isinstance(reason, str):
        return reason
    broker_reason = headers.get("x-first-death-reason")
    if broker_reason in ("delivery_limit", b"delivery_limit"):
        return "returned more often than the queue's delivery limit"
    if broker_reason:
        return f"dead-lettered by RabbitMQ ({_text(broker_reason)})"
    return ""


def _count(value: object) -> int:
    # Headers come from outside: anything but a non-negative integer counts as nothing.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
