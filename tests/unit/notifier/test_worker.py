"""The notifier loop on the real embedded queue and SQLite: one email per job outcome, always."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy.exc import OperationalError

from earshot.common.mail import Mailer, open_mailer
from earshot.common.messages import NOTIFICATIONS_QUEUE, JobFinished
from earshot.common.queue import MessageQueue
from earshot.common.worker import Heartbeat, PermanentError, TransientError
from earshot.notifier.emails import event_id
from earshot.notifier.models import FAILED, SENDING, SENT
from earshot.notifier.settings import NotifierSettings
from earshot.notifier.store import NotificationStore
from earshot.notifier.worker import NotificationHandler, parse_event
from tests.mail import plain_text, read_outbox
from tests.smtp_sink import SmtpSink
from tests.unit.notifier.conftest import StartLoop
from tests.unit.notifier.helpers import (
    CountingMailer,
    HeldDelivery,
    failed_job,
    job_finished,
    wait_until,
)

FROM = "earshot <no-reply@earshot.local>"


async def publish(queue: MessageQueue, event: JobFinished | bytes, *, message_id: str) -> None:
    body = event if isinstance(event, bytes) else event.to_bytes()
    await queue.publish(NOTIFICATIONS_QUEUE, body, message_id=message_id)


async def state_of(store: NotificationStore, event: JobFinished) -> str | None:
    record = await store.get(event_id(event))
    return None if record is None else record.state


async def state_is(store: NotificationStore, event: JobFinished, state: str) -> bool:
    return await state_of(store, event) == state


async def assert_queue_empty(queue: MessageQueue) -> None:
    """Nothing left to deliver: every message was acked (or dead-lettered)."""
    deliveries = queue.consume(NOTIFICATIONS_QUEUE)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(deliveries), timeout=0.3)
    finally:
        await deliveries.aclose()  # type: ignore[attr-defined]


async def test_success_sends_one_course_email_with_the_link(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    outbox_mailer: Mailer,
    start_loop: StartLoop,
) -> None:
    # given a running notifier writing to the outbox
    await start_loop(outbox_mailer)

    # when the gateway reports a succeeded job
    event = job_finished()
    await publish(queue, event, message_id="job-finished-1")
    await wait_until(lambda: state_is(store, event, SENT), timeout=10)
    await wait_until(lambda: read_outbox(settings.outbox_dir))

    # then exactly one email, in the course's words, is in the outbox
    [mail] = read_outbox(settings.outbox_dir)
    assert mail["Subject"] == "MP3 Download"
    assert mail["To"] == "alice@example.com"
    assert "mp3 file_id: m-1 is now ready!" in plain_text(mail)
    assert "http://127.0.0.1:8080/download?fid=m-1" in plain_text(mail)
    record = await store.get("j-123:succeeded")
    assert record is not None and record.state == SENT and record.attempts == 1
    assert record.message_id == "<j-123.succeeded@earshot>" == mail["Message-ID"]
    assert record.sent_at is not None
    await assert_queue_empty(queue)


async def test_failure_sends_the_reason(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    outbox_mailer: Mailer,
    start_loop: StartLoop,
) -> None:
    await start_loop(outbox_mailer)

    event = failed_job(error="the video has no audio track")
    await publish(queue, event, message_id="job-finished-2")
    await wait_until(lambda: read_outbox(settings.outbox_dir))

    [mail] = read_outbox(settings.outbox_dir)
    assert mail["Subject"] == "Conversion failed: holiday.mkv"
    assert "the video has no audio track" in plain_text(mail)
    await wait_until(lambda: _is(store, event, SENT))


async def _is(store: NotificationStore, event: JobFinished, state: str) -> bool:
    return await state_of(store, event) == state


async def test_the_same_outcome_published_twice_sends_one_email(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    outbox_mailer: Mailer,
    start_loop: StartLoop,
) -> None:
    # given the same outcome published under two message ids (a republished outbox row)
    mailer = CountingMailer(outbox_mailer)
    event = job_finished()
    await publish(queue, event, message_id="first")
    await publish(queue, event, message_id="second")

    # when the notifier handles both, and the first id is published again after its ack
    await start_loop(mailer)
    await wait_until(lambda: _is(store, event, SENT))
    await publish(queue, event, message_id="first")
    await asyncio.sleep(0.3)
    await assert_queue_empty(queue)

    # then one send, one file
    assert mailer.sent == ["<j-123.succeeded@earshot>"]
    assert len(read_outbox(settings.outbox_dir)) == 1


async def test_a_redelivery_after_a_crash_before_the_ack_sends_nothing(
    store: NotificationStore, outbox_mailer: Mailer, settings: NotifierSettings
) -> None:
    # given a delivery that was fully handled but whose ack was lost in a crash
    mailer = CountingMailer(outbox_mailer)
    handler = NotificationHandler(store=store, mailer=mailer, mail_from=FROM)
    delivery = HeldDelivery(job_finished().to_bytes())
    await handler(delivery)

    # when the same delivery comes back
    delivery.attempt = 2
    await handler(delivery)

    # then it was sent once
    assert len(mailer.sent) == 1
    assert len(read_outbox(settings.outbox_dir)) == 1


async def test_a_crash_between_send_and_record_resends_the_same_email_into_one_file(
    store: NotificationStore, outbox_mailer: Mailer, settings: NotifierSettings
) -> None:
    # given a send whose `sent` mark was lost (the process died right after sending)
    class CrashingStore(NotificationStore):
        crashed = False

        async def mark_sent(self, event_id: str) -> None:
            if not self.crashed:
                self.crashed = True
                raise RuntimeError("killed")
            await super().mark_sent(event_id)

    crashing = CrashingStore(store._sessions, claim_lease_seconds=0.3)
    handler = NotificationHandler(store=crashing, mailer=outbox_mailer, mail_from=FROM)
    delivery = HeldDelivery(job_finished().to_bytes())
    with pytest.raises(RuntimeError):
        await handler(delivery)

    # when it is redelivered at once, then it waits for the dead sender's claim to lapse
    delivery.attempt = 2
    with pytest.raises(TransientError, match="another consumer"):
        await handler(delivery)
    await asyncio.sleep(0.35)
    delivery.attempt = 3
    await handler(delivery)

    # then the email went out again with the same Message-ID: the outbox still holds one
    assert len(read_outbox(settings.outbox_dir)) == 1
    record = await store.get("j-123:succeeded")
    assert record is not None and record.state == SENT and record.attempts == 2


async def test_two_notifiers_handed_the_same_outcome_send_it_once(
    store: NotificationStore, outbox_mailer: Mailer
) -> None:
    # given two consumers that receive the same JobFinished at the same moment
    mailer = CountingMailer(outbox_mailer)
    handlers = [NotificationHandler(store=store, mailer=mailer, mail_from=FROM) for _ in range(2)]
    body = job_finished().to_bytes()

    # when both handle it
    results = await asyncio.gather(
        *(handler(HeldDelivery(body)) for handler in handlers), return_exceptions=True
    )

    # then one sent it and the other was told to come back later (when it will find it sent)
    assert len(mailer.sent) == 1
    assert [r for r in results if r is not None and not isinstance(r, TransientError)] == []
    await handlers[0](HeldDelivery(body))
    assert len(mailer.sent) == 1


async def test_a_database_outage_after_sending_is_waited_out_not_resent(
    store: NotificationStore, outbox_mailer: Mailer, settings: NotifierSettings
) -> None:
    # given the database goes away right after the email went out
    class FlakyStore(NotificationStore):
        failures = 2

        async def mark_sent(self, event_id: str) -> None:
            if self.failures:
                self.failures -= 1
                raise OperationalError("UPDATE notifications", {}, ConnectionError("db down"))
            await super().mark_sent(event_id)

    mailer = CountingMailer(outbox_mailer)
    handler = NotificationHandler(store=FlakyStore(store._sessions), mailer=mailer, mail_from=FROM)

    # when the delivery is handled
    await handler(HeldDelivery(job_finished().to_bytes()))

    # then the email was sent once and recorded once the database came back
    assert len(mailer.sent) == 1
    record = await store.get("j-123:succeeded")
    assert record is not None and record.state == SENT


async def test_smtp_down_then_up_is_retried_and_delivered_once(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    start_loop: StartLoop,
) -> None:
    # given the mail server is down
    await start_loop(open_mailer(smtp_sink.url, outbox_dir=settings.outbox_dir))
    event = job_finished()
    await publish(queue, event, message_id="job-finished-3")

    # when the notifier has failed a few times, and then the server comes up
    async def failed_twice() -> bool:
        record = await store.get(event_id(event))
        return record is not None and record.attempts >= 2 and record.last_error is not None

    await wait_until(failed_twice)
    assert await state_of(store, event) == SENDING
    smtp_sink.start()

    # then the email is delivered, once
    await wait_until(lambda: _is(store, event, SENT))
    await asyncio.sleep(0.3)
    assert len(smtp_sink.received) == 1
    assert smtp_sink.received[0]["Subject"] == "MP3 Download"
    assert "mp3 file_id: m-1 is now ready!" in plain_text(smtp_sink.received[0])
    await assert_queue_empty(queue)


async def test_a_permanent_rejection_is_recorded_and_acked_and_the_loop_goes_on(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    start_loop: StartLoop,
) -> None:
    # given a server that refuses one recipient
    smtp_sink.rejected_recipients.add("gone@example.com")
    smtp_sink.start()
    await start_loop(open_mailer(smtp_sink.url, outbox_dir=settings.outbox_dir))

    # when a notification for that recipient comes first, then another one
    rejected = job_finished(job_id="j-gone", username="gone@example.com")
    accepted = job_finished(job_id="j-ok")
    await publish(queue, rejected, message_id="a")
    await publish(queue, accepted, message_id="b")

    # then the first is failed for good (not retried, not dead-lettered), the second is sent
    await wait_until(lambda: _is(store, accepted, SENT))
    await wait_until(lambda: _is(store, rejected, FAILED))
    record = await store.get(event_id(rejected))
    assert record is not None and record.attempts == 1
    assert "550" in (record.last_error or "")
    assert [m["To"] for m in smtp_sink.received] == ["alice@example.com"]
    assert await queue.dead_letters(NOTIFICATIONS_QUEUE) == []
    await assert_queue_empty(queue)


async def test_garbage_is_dead_lettered_and_the_loop_stays_alive(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    outbox_mailer: Mailer,
    start_loop: StartLoop,
) -> None:
    # given a running notifier
    loop_task = await start_loop(outbox_mailer)

    # when garbage arrives, then a message of the wrong shape, then a good one
    await publish(queue, b"\x00not json", message_id="garbage")
    await publish(queue, json.dumps({"type": "job.finished"}).encode(), message_id="shapeless")
    good = job_finished()
    await publish(queue, good, message_id="good")

    # then both bad ones are dead-lettered once, the good one is sent, the loop still runs
    await wait_until(lambda: _is(store, good, SENT))
    dead = await queue.dead_letters(NOTIFICATIONS_QUEUE)
    assert sorted(message_id for message_id, _, _ in dead) == ["garbage", "shapeless"]
    assert all("not a JobFinished message" in reason for _, _, reason in dead)
    assert await store.count() == 1
    assert not loop_task.done()


async def test_transient_failures_past_the_cap_are_dead_lettered_and_a_redrive_sends(
    queue: MessageQueue,
    store: NotificationStore,
    settings: NotifierSettings,
    smtp_sink: SmtpSink,
    start_loop: StartLoop,
) -> None:
    # given a notifier that gives up after three attempts, and no mail server
    patient = settings.model_copy(update={"notifier_max_attempts": 3})
    await start_loop(
        open_mailer(smtp_sink.url, outbox_dir=settings.outbox_dir), with_settings=patient
    )
    event = job_finished()
    await publish(queue, event, message_id="doomed")

    # when it runs out of attempts
    await wait_until(lambda: queue.dead_letters(NOTIFICATIONS_QUEUE))
    record = await store.get(event_id(event))
    assert record is not None and record.state == SENDING and record.attempts == 3

    # then an operator who fixed the mail server redrives it, and it is sent once
    smtp_sink.start()
    assert await queue.redrive(NOTIFICATIONS_QUEUE, "doomed")
    await wait_until(lambda: _is(store, event, SENT))
    assert len(smtp_sink.received) == 1


async def test_the_loop_touches_its_heartbeat_file(
    settings: NotifierSettings, outbox_mailer: Mailer, start_loop: StartLoop
) -> None:
    await start_loop(outbox_mailer)

    await wait_until(lambda: settings.heartbeat_file.exists())

    assert Heartbeat.file_age_seconds(settings.heartbeat_file) < 5


async def test_handler_sorts_errors_into_permanent_and_transient(
    store: NotificationStore, settings: NotifierSettings, smtp_sink: SmtpSink
) -> None:
    down = open_mailer(smtp_sink.url, outbox_dir=settings.outbox_dir)
    handler = NotificationHandler(store=store, mailer=down, mail_from=FROM)

    with pytest.raises(PermanentError):
        await handler(HeldDelivery(b"[]"))
    with pytest.raises(PermanentError):
        await handler(HeldDelivery(job_finished(username="a@b.c\r\nBcc: x@y.z").to_bytes()))
    with pytest.raises(TransientError):
        await handler(HeldDelivery(job_finished().to_bytes()))


def test_parse_event_names_the_bad_fields() -> None:
    with pytest.raises(PermanentError, match="job_id"):
        parse_event(b'{"type": "job.finished", "outcome": "succeeded"}')
    with pytest.raises(PermanentError, match="type"):
        parse_event(job_finished().to_bytes().replace(b"job.finished", b"job.started"))
