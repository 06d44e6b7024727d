"""The notifier's record of emails on SQLite, MariaDB and PostgreSQL, through its real store."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from earshot.common.messages import JobFinished
from earshot.notifier.emails import event_id, message_id
from earshot.notifier.models import Notification
from earshot.notifier.store import ClaimConflict, NotificationStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(db_sessions: async_sessionmaker[AsyncSession]) -> NotificationStore:
    return NotificationStore(db_sessions)


def an_outcome() -> JobFinished:
    job_id = str(uuid.uuid4())
    return JobFinished(
        job_id=job_id,
        outcome="succeeded",
        user_id="u1",
        username="ada@example.com",
        video_fid=job_id,
        mp3_fid="f" * 24,
        original_filename="clip.mp4",
        download_url="http://gw.test/download?fid=" + "f" * 24,
    )


async def claim(store: NotificationStore, event: JobFinished) -> Notification | None:
    return await store.claim(event, event_id=event_id(event), message_id=message_id(event))


async def test_a_claimed_notification_is_sent_once(store: NotificationStore) -> None:
    event = an_outcome()
    key = event_id(event)

    first = await claim(store, event)
    # the send failed transiently, which releases the claim: a redelivery tries again
    await store.note_error(key, error="421 try later")
    retry = await claim(store, event)
    await store.mark_sent(key)
    after_sent = await claim(store, event)

    assert first is not None and first.attempts == 1 and first.state == "sending"
    assert retry is not None and retry.attempts == 2
    assert after_sent is None
    record = await store.get(key)
    assert record is not None and record.state == "sent" and record.last_error is None
    assert record.sent_at is not None and record.sent_at.utcoffset() == timedelta(0)
    assert record.message_id == message_id(event)


async def test_a_failed_notification_is_never_claimed_again(store: NotificationStore) -> None:
    event = an_outcome()

    await claim(store, event)
    await store.mark_failed(event_id(event), error="550 no such mailbox " + "x" * 5000)

    assert await claim(store, event) is None
    record = await store.get(event_id(event))
    assert record is not None and record.state == "failed"
    assert record.last_error is not None and len(record.last_error) == 1000


async def test_racing_claims_keep_one_record_and_none_succeeds_once_it_is_sent(
    store: NotificationStore,
) -> None:
    # given two deliveries of one outcome (a republished outbox row), handled at the same moment
    event = an_outcome()

    racing = await asyncio.gather(claim(store, event), claim(store, event), return_exceptions=True)
    await store.mark_sent(event_id(event))
    after = await asyncio.gather(*(claim(store, event) for _ in range(3)))

    # then exactly one racer holds the claim, the other is told to retry (never an error),
    # and once it is sent no claim succeeds
    claimed = [result for result in racing if isinstance(result, Notification)]
    assert all(isinstance(result, Notification | ClaimConflict) for result in racing), racing
    assert len(claimed) == 1 and after == [None, None, None]
    record = await store.get(event_id(event))
    assert record is not None and record.state == "sent" and record.attempts == 1


async def test_many_racing_claims_on_a_retried_notification_let_one_through(
    store: NotificationStore,
) -> None:
    # given an outcome whose first send failed transiently (claim released)
    event = an_outcome()
    await claim(store, event)
    await store.note_error(event_id(event), error="421 try later")

    # when five deliveries race for it
    racing = await asyncio.gather(*(claim(store, event) for _ in range(5)), return_exceptions=True)

    # then one wins and four are told to come back later
    assert sum(isinstance(result, Notification) for result in racing) == 1
    assert sum(isinstance(result, ClaimConflict) for result in racing) == 4
