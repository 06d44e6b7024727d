"""The notification emails: course subject and body line, failure reason, stable Message-ID."""

from __future__ import annotations

from earshot.notifier.emails import SUCCESS_SUBJECT, build_email, event_id, message_id
from tests.mail import plain_text
from tests.unit.notifier.helpers import job_finished

FROM = "earshot <no-reply@earshot.local>"


def test_success_email_has_the_course_subject_line_and_link() -> None:
    message = build_email(job_finished(), mail_from=FROM)

    assert message["Subject"] == SUCCESS_SUBJECT == "MP3 Download"
    assert message["To"] == "alice@example.com"
    assert message["From"] == FROM
    text = plain_text(message)
    assert "mp3 file_id: m-1 is now ready!" in text
    assert "http://127.0.0.1:8080/download?fid=m-1" in text
    assert "holiday.mkv" in text


def test_failure_email_names_the_file_and_the_reason() -> None:
    event = job_finished(
        outcome="failed", mp3_fid=None, download_url=None, error="the video has no audio track"
    )

    message = build_email(event, mail_from=FROM)

    assert message["Subject"] == "Conversion failed: holiday.mkv"
    assert "Reason: the video has no audio track" in plain_text(message)
    assert "is now ready" not in plain_text(message)


def test_failure_without_a_reason_still_says_something() -> None:
    message = build_email(job_finished(outcome="failed", error=None), mail_from=FROM)

    assert "Reason: unknown error" in plain_text(message)


def test_success_without_a_download_url_points_at_the_course_route() -> None:
    message = build_email(job_finished(download_url=None), mail_from=FROM)

    assert "GET /download?fid=m-1" in plain_text(message)


def test_the_same_event_always_builds_the_same_email() -> None:
    first = build_email(job_finished(), mail_from=FROM)
    second = build_email(job_finished(), mail_from=FROM)

    assert first.as_bytes() == second.as_bytes()
    assert first["Message-ID"] == message_id(job_finished()) == "<j-123.succeeded@earshot>"
    assert event_id(job_finished()) == "j-123:succeeded"


def test_outcomes_of_one_job_get_distinct_ids() -> None:
    failed = job_finished(outcome="failed")

    assert message_id(failed) != message_id(job_finished())
    assert event_id(failed) != event_id(job_finished())


def test_a_file_name_cannot_inject_headers() -> None:
    event = job_finished(outcome="failed", original_filename="a.mp4\r\nBcc: victim@example.com")

    message = build_email(event, mail_from=FROM)

    assert message["Bcc"] is None
    assert message["Subject"] == "Conversion failed: a.mp4 Bcc: victim@example.com"
    assert b"\nBcc:" not in message.as_bytes()


def test_odd_job_ids_still_make_a_valid_message_id() -> None:
    assert message_id(job_finished(job_id="a b<c>@d")) == "<a-b-c-d.succeeded@earshot>"


def test_long_and_non_ascii_names_survive() -> None:
    name = "Видео — été 🎵 " * 30 + ".mp4"

    message = build_email(job_finished(outcome="failed", original_filename=name), mail_from=FROM)

    subject = str(message["Subject"])
    assert subject.startswith("Conversion failed: Видео — été 🎵")
    assert subject.endswith("…") and len(subject) == len("Conversion failed: ") + 200
    assert "Видео — été 🎵" in plain_text(message)
