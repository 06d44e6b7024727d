"""Signing in: throttle, check the password, issue a token; shared by the course and API routes."""

from __future__ import annotations

import structlog

from earshot.auth.deps import AuthServices
from earshot.auth.issuer import IssuedToken
from earshot.auth.users import authenticate, normalise_email
from earshot.common.db import AsyncSession

log = structlog.get_logger()


class LoginFailed(Exception):
    """Unknown user or wrong password (deliberately not told apart)."""


class LoginThrottled(Exception):
    """Too many failed attempts for this account or client; try again after `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry in {retry_after} s")
        self.retry_after = retry_after


async def sign_in(
    services: AuthServices, session: AsyncSession, *, email: str, password: str, client: str
) -> IssuedToken:
    """A token for the user; `LoginThrottled` or `LoginFailed` otherwise."""
    account = normalise_email(email)
    limiter = services.limiter
    wait = limiter.retry_after(account=account, client=client)
    if wait > 0:
        log.warning("login_throttled", client=client, retry_after=wait)
        raise LoginThrottled(wait)
    attempt = limiter.begin(account=account, client=client)
    try:
        user = await authenticate(
            session, email=account, password=password, passwords=services.passwords
        )
    except BaseException:
        limiter.withdraw(attempt, account=account, client=client)  # an outage is no guess
        raise
    if user is None:
        log.info("login_failed", client=client)
        raise LoginFailed
    limiter.withdraw(attempt, account=account, client=client)
    log.info("login_succeeded", user_id=user.id, client=client)
    return services.issuer.issue(user_id=user.id, email=user.email, is_admin=user.is_admin)
