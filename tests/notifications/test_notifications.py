"""The notification channel against real servers: an SMTP server (aiosmtpd, in process)
and a small HTTP server standing in for the SMS gateway; and the dev outbox.

`SmtpSink` and `SmsGateway` are reused by the login tests (tests/identity/test_password.py).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from felles.config import Environment, Settings
from felles.notifications.service import (
    DEFAULT_SENDER,
    NotificationError,
    Notifier,
    SmtpServer,
    mask_email,
    mask_phone,
    read_outbox,
)
from felles.web.observability import configure_logging


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """A real SMTP server on a free local port that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def texts_to(self, address: str) -> list[str]:
        return [
            m.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
            for m in self.messages
            if m["To"] == address
        ]


class SmsGateway:
    """A real HTTP server on a free local port that records the JSON it is sent."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                gateway.received.append(json.loads(self.rfile.read(length)))
                gateway.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(gateway.status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "1"}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sms"

    def __enter__(self) -> SmsGateway:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts_to(self, number: str) -> list[str]:
        return [str(m["text"]) for m in self.received if m["to"] == number]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as gateway:
        yield gateway


# --- E-mail ---------------------------------------------------------------------------


async def test_email_goes_to_the_smtp_server(smtp: SmtpSink) -> None:
    notifier = Notifier(smtp_url=smtp.url, sender="Felles <no-reply@felles.test>")
    await notifier.send_email(
        "kari@example.no", "Din kode", "Koden er 123456. Hilsen Ærlig Øystein Å."
    )
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == "Din kode"
    assert message["From"] == "Felles <no-reply@felles.test>"
    assert message["Message-ID"] and message["Date"]
    assert smtp.envelopes[0] == ("no-reply@felles.test", ["kari@example.no"])
    assert smtp.texts_to("kari@example.no") == ["Koden er 123456. Hilsen Ærlig Øystein Å.\n"]


async def test_an_unreachable_smtp_server_is_a_notification_error() -> None:
    notifier = Notifier(smtp_url=f"smtp://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(NotificationError) as caught:
        await notifier.send_email("kari@example.no", "Subject", "secret 123456")
    assert "123456" not in str(caught.value)


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("kari@example.no\r\nBcc: evil@example.com", "Hei"),
        ("kari@example.no", "Hei\nBcc: evil@example.com"),
        ("not an address", "Hei"),
        ("", "Hei"),
    ],
)
async def test_header_injection_and_bad_addresses_are_refused(
    smtp: SmtpSink, to: str, subject: str
) -> None:
    with pytest.raises(ValueError):
        await Notifier(smtp_url=smtp.url).send_email(to, subject, "text")
    assert smtp.messages == []


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtp://mail.example:2525") == SmtpServer(
        "mail.example", 2525, "none"
    )
    assert SmtpServer.from_url("smtps://u%40x:p%3Aw@mail.example") == SmtpServer(
        "mail.example", 465, "implicit", "u@x", "p:w"
    )
    assert SmtpServer.from_url("smtp+starttls://mail.example").port == 587
    with pytest.raises(ValueError):
        SmtpServer.from_url("http://mail.example")


# --- SMS ------------------------------------------------------------------------------


async def test_sms_goes_to_the_gateway_as_json(sms_gateway: SmsGateway) -> None:
    notifier = Notifier(sms_gateway_url=sms_gateway.url, sms_gateway_token="s3cret")
    await notifier.send_sms("+4791234567", "Koden din er 123456")
    assert sms_gateway.received == [{"to": "+4791234567", "text": "Koden din er 123456"}]
    assert sms_gateway.headers[0]["authorization"] == "Bearer s3cret"
    assert sms_gateway.headers[0]["content-type"] == "application/json"


async def test_a_gateway_that_refuses_is_a_notification_error() -> None:
    with SmsGateway(status=500) as gateway, pytest.raises(NotificationError, match="HTTP 500"):
        await Notifier(sms_gateway_url=gateway.url).send_sms("+4791234567", "x 123456")


async def test_an_unreachable_gateway_is_a_notification_error() -> None:
    notifier = Notifier(sms_gateway_url=f"http://127.0.0.1:{free_port()}/sms", timeout=2)
    with pytest.raises(NotificationError):
        await notifier.send_sms("+4791234567", "text")


async def test_sms_text_must_fit(sms_gateway: SmsGateway) -> None:
    notifier = Notifier(sms_gateway_url=sms_gateway.url)
    with pytest.raises(ValueError):
        await notifier.send_sms("+4791234567", "x" * 1000)
    with pytest.raises(ValueError):
        await notifier.send_sms("+4791234567\n+4799999999", "text")
    assert sms_gateway.received == []


# --- The dev outbox and the environment ----------------------------------------------


async def test_without_servers_messages_go_to_the_outbox(tmp_path: Path) -> None:
    notifier = Notifier(outbox_dir=tmp_path / "outbox")
    await notifier.send_sms("+4791234567", "SMS 111111")
    await notifier.send_email("kari@example.no", "Kode", "E-post 222222")
    messages = read_outbox(tmp_path / "outbox")
    assert [(m["channel"], m["to"]) for m in messages] == [
        ("sms", "+4791234567"),
        ("email", "kari@example.no"),
    ]
    assert messages[1]["subject"] == "Kode" and messages[1]["text"] == "E-post 222222"
    files = list((tmp_path / "outbox").iterdir())
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)  # owner only
    assert read_outbox(tmp_path / "nothing-here") == []


async def test_configuration_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    smtp: SmtpSink,
    sms_gateway: SmsGateway,
) -> None:
    for name in ("FELLES_SMTP_URL", "FELLES_SMS_GATEWAY_URL", "FELLES_SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    dev = Notifier.from_settings(Settings(env=Environment.test, data_dir=tmp_path))
    assert dev.smtp is None and dev.sms_gateway_url is None and dev.sender == DEFAULT_SENDER
    assert dev.outbox_dir == tmp_path / "outbox"

    monkeypatch.setenv("FELLES_SMTP_URL", smtp.url)
    monkeypatch.setenv("FELLES_SMTP_FROM", "Felles <post@felles.test>")
    monkeypatch.setenv("FELLES_SMS_GATEWAY_URL", sms_gateway.url)
    monkeypatch.setenv("FELLES_SMS_GATEWAY_TOKEN", "gateway-secret")
    settings = Settings(env=Environment.test, data_dir=tmp_path)
    for secret in ("gateway-secret", smtp.url):  # secrets stay out of reprs and dumps
        assert secret not in repr(settings) and secret not in settings.model_dump_json()
    configured = Notifier.from_settings(settings)
    await configured.send_email("ola@example.no", "Hei", "Tekst")
    await configured.send_sms("+4790000000", "Tekst")
    assert smtp.envelopes[0][0] == "post@felles.test"
    assert sms_gateway.texts_to("+4790000000") == ["Tekst"]
    assert sms_gateway.headers[-1]["authorization"] == "Bearer gateway-secret"
    assert read_outbox(tmp_path / "outbox") == []


async def test_production_never_writes_an_outbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FELLES_SMTP_URL", raising=False)
    monkeypatch.delenv("FELLES_SMS_GATEWAY_URL", raising=False)
    notifier = Notifier.from_settings(Settings(env=Environment.prod, data_dir=tmp_path))
    with pytest.raises(NotificationError, match="FELLES_SMS_GATEWAY_URL"):
        await notifier.send_sms("+4791234567", "123456")
    with pytest.raises(NotificationError, match="FELLES_SMTP_URL"):
        await notifier.send_email("kari@example.no", "Kode", "123456")
    assert not (tmp_path / "outbox").exists()


async def test_logs_name_the_channel_but_never_the_text_or_the_full_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    configure_logging("INFO")
    notifier = Notifier(outbox_dir=tmp_path)
    await notifier.send_sms("+4791234567", "Kode 987654 for 01018012345")
    await notifier.send_email("kari.nordmann@example.no", "Kode", "Kode 987654")
    logged = capsys.readouterr().err
    assert '"channel": "sms"' in logged and '"channel": "email"' in logged
    for secret in ("987654", "01018012345", "91234567", "kari.nordmann"):
        assert secret not in logged


def test_masks() -> None:
    assert mask_phone("+47 912 34 567") == "*** ** 567"
    assert mask_email("kari.nordmann@example.no") == "k***@example.no"
    assert mask_email("nonsense") == "***"
