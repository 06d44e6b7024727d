"""The mail port's contract, written once and run against every adapter (outbox folder, SMTP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from earshot.common.mail import Mailer, MailError, open_mailer
from earshot.common.mail.outbox import OutboxMailer, eml_file_name
from earshot.common.mail.smtp import SmtpMailer
from tests.mail import plain_text, read_outbox
from tests.smtp_sink import SmtpSink


@dataclass
class MailRig:
    """One adapter plus a way to read what it delivered and to make its destination unreachable."""

    kind: str
    mailer: Mailer
    outbox_dir: Path
    sink: SmtpSink | None = None

    def received(self) -> list[EmailMessage]:
        """Every message that arrived, parsed."""
        if self.sink is not None:
            return list(self.sink.received)
        return read_outbox(self.outbox_dir)

    def take_down(self) -> None:
        """Make the destination unreachable: the server stops, or the outbox path is a file."""
        if self.sink is not None:
            self.sink.stop()
        else:
            if self.outbox_dir.exists():
                self.outbox_dir.rmdir()
            self.outbox_dir.write_text("not a folder")


@pytest.fixture(params=["outbox", "smtp"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailRig]:
    outbox_dir = tmp_path / "outbox"
    if request.param == "outbox":
        yield MailRig("outbox", open_mailer("", outbox_dir=outbox_dir), outbox_dir)
        return
    sink = SmtpSink()
    sink.start()
    try:
        yield MailRig("smtp", open_mailer(sink.url, outbox_dir=outbox_dir), outbox_dir, sink)
    finally:
        sink.stop()


def make_message(*, subject: str, to: str, body: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "earshot <no-reply@earshot.local>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


async def test_a_sent_message_arrives_intact(rig: MailRig) -> None:
    await rig.mailer.send(
        make_message(
            subject="MP3 Download",
            to="alice@example.com",
            body="mp3 file_id: abc is now ready!\n",
            message_id="<job1.succeeded@earshot>",
        )
    )

    [got] = rig.received()
    assert got["Subject"] == "MP3 Download"
    assert got["To"] == "alice@example.com"
    assert got["Message-ID"] == "<job1.succeeded@earshot>"
    assert "mp3 file_id: abc is now ready!" in plain_text(got)


async def test_non_ascii_subject_and_body_survive(rig: MailRig) -> None:
    subject = "Conversion échouée: Ünïcødé 🎵 видео.mp4"
    body = "Raison : la piste audio est illisible — 日本語 ✓\n"

    await rig.mailer.send(
        make_message(subject=subject, to="bob@example.com", body=body, message_id="<u@earshot>")
    )

    [got] = rig.received()
    assert got["Subject"] == subject
    assert plain_text(got) == body


async def test_check_passes_when_reachable(rig: MailRig) -> None:
    await rig.mailer.check()


async def test_unreachable_destination_is_a_transient_error(rig: MailRig) -> None:
    rig.take_down()
    message = make_message(subject="s", to="c@example.com", body="b\n", message_id="<d@earshot>")

    with pytest.raises(MailError) as sent:
        await rig.mailer.send(message)
    with pytest.raises(MailError) as checked:
        await rig.mailer.check()

    assert sent.value.permanent is False
    assert checked.value.permanent is False


async def test_the_same_message_twice_in_the_outbox_is_one_file(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path / "outbox")
    message = make_message(subject="s", to="d@example.com", body="b\n", message_id="<j.ok@earshot>")

    await mailer.send(message)
    await mailer.send(message)

    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == [eml_file_name("<j.ok@earshot>")]


def test_outbox_file_names_are_safe_and_distinct() -> None:
    a = eml_file_name("<../../etc/passwd@x>")
    b = eml_file_name("<.._.._etc_passwd@x>")

    assert "/" not in a and not a.startswith(".")
    assert a != b


async def test_smtp_recipient_rejected_with_550_is_permanent() -> None:
    sink = SmtpSink()
    sink.rejected_recipients.add("nobody@example.com")
    sink.start()
    try:
        mailer = SmtpMailer.from_url(sink.url)
        message = make_message(subject="s", to="nobody@example.com", body="b\n", message_id="<r@e>")
        with pytest.raises(MailError) as raised:
            await mailer.send(message)
    finally:
        sink.stop()

    assert raised.value.permanent is True
    assert sink.received == []


async def test_smtp_timeout_is_transient() -> None:
    # A listener that accepts but never greets: the client must give up after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{port}?timeout=0.3")
        with pytest.raises(MailError) as raised:
            await mailer.check()

    assert raised.value.permanent is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user%40x.com:p%3Ass@mail.example.com:2525?starttls=1&timeout=7",
            {
                "hostname": "mail.example.com",
                "port": 2525,
                "username": "user@x.com",
                "password": "p:ss",
                "implicit_tls": False,
                "start_tls": True,
                "timeout_seconds": 7.0,
            },
        ),
        ("smtps://mail.example.com", {"port": 465, "implicit_tls": True, "start_tls": False}),
        ("smtp://mail.example.com?starttls=1", {"port": 587, "start_tls": True}),
        ("smtp://mail.example.com", {"port": 25, "start_tls": None, "username": None}),
        ("smtp://h?verify=0", {"validate_certs": False}),
    ],
)
def test_smtp_url_parsing(url: str, expected: dict[str, object]) -> None:
    mailer = SmtpMailer.from_url(url)

    assert {key: getattr(mailer, key) for key in expected} == expected
    assert "p:ss" not in repr(mailer)


@pytest.mark.parametrize(
    "url",
    [
        "smtp://",
        "smtp://h?startls=1",
        "smtp://h?starttls=maybe",
        "smtp://h?timeout=0",
        "smtp://h:x",
    ],
)
def test_malformed_smtp_urls_are_refused(url: str) -> None:
    with pytest.raises(MailError):
        SmtpMailer.from_url(url)


def test_unknown_mail_url_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MailError, match="unsupported"):
        open_mailer("http://x", outbox_dir=tmp_path)
