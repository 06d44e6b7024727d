"""Login throttling: failed attempts counted per account and per client over a sliding window.

In-process on purpose: a few counters need no shared store, and with several auth replicas each one
enforces the limit on its own share of the traffic.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from earshot.auth.settings import AuthSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED_KEYS = 100_000  # bounds memory when an attacker sprays many accounts or addresses


class FailureWindow:
    """The last `max_failures` failure times per key; blocked while all are inside the window."""

    def __init__(
        self,
        *,
        max_failures: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may try now."""
        failures = self._failures.get(key)
        if failures is None or len(failures) < self._max_failures:
            return 0.0
        return max(0.0, self._window_seconds - (self._clock() - failures[0]))

    def record_failure(self, key: str) -> float:
        """Count one failed attempt for `key`; the returned stamp lets `forgive` take it back."""
        stamp = self._clock()
        failures = self._failures.setdefault(key, deque(maxlen=self._max_failures))
        failures.append(stamp)
        if len(self._failures) > MAX_TRACKED_KEYS:
            self._forget_expired()
        return stamp

    def forgive(self, key: str, stamp: float) -> None:
        """Take back the attempt recorded at `stamp` (it turned out to succeed)."""
        failures = self._failures.get(key)
        if failures is not None and stamp in failures:
            failures.remove(stamp)
            if not failures:
                del self._failures[key]

    def _forget_expired(self) -> None:
        horizon = self._clock() - self._window_seconds
        for key in [k for k, times in self._failures.items() if times[-1] < horizon]:
            del self._failures[key]
        while len(self._failures) > MAX_TRACKED_KEYS:
            del self._failures[next(iter(self._failures))]  # oldest first (insertion order)


class LoginLimiter:
    """Failed-login limits per account and per client; successful logins are not counted."""

    def __init__(self, *, per_account: FailureWindow, per_client: FailureWindow) -> None:
        self._per_account = per_account
        self._per_client = per_client

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> LoginLimiter:
        """The limits configured in settings."""
        window = settings.login_failure_window_seconds
        return cls(
            per_account=FailureWindow(
                max_failures=settings.login_max_failures_per_account,
                window_seconds=window,
                clock=clock,
            ),
            per_client=FailureWindow(
                max_failures=settings.login_max_failures_per_client,
                window_seconds=window,
                clock=clock,
            ),
        )

    def retry_after(self, *, account: str, client: str) -> int:
        """Whole seconds to wait before this login may be tried (0: go ahead)."""
        wait = max(self._per_account.retry_after(account), self._per_client.retry_after(client))
        return math.ceil(wait)

    def begin(self, *, account: str, client: str) -> tuple[float, float]:
        """Count an attempt as failed until `withdraw` takes it back.

        Counting before the (slow) password check keeps a burst of parallel guesses from all
        passing the limit before the first of them is recorded.
        """
        return self._per_account.record_failure(account), self._per_client.record_failure(client)

    def withdraw(self, attempt: tuple[float, float], *, account: str, client: str) -> None:
        """Take back an attempt that did not fail: successful logins do not count."""
        self._per_account.forgive(account, attempt[0])
        self._per_client.forgive(client, attempt[1])


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks as network objects."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def client_address(
    peer: str | None, forwarded_for: str | None, *, trusted: Sequence[Network]
) -> str:
    """The client behind trusted proxies: X-Forwarded-For read from the right, proxies skipped.

    Only hops added by trusted proxies are believed; anything a client wrote itself further left
    is ignored, so a forged header cannot dodge the per-client limit.
    """
    address = peer or "unknown"
    if not forwarded_for or not _is_trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _is_trusted(hop, trusted):
            break
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
