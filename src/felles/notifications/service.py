"""Send a person a short message by e-mail (SMTP) or SMS (an HTTP gateway).

Configuration, in `Settings` (environment variables):

    FELLES_SMTP_URL            smtp://host:25, smtp+starttls://user:pass@host:587, smtps://host:465
    FELLES_SMTP_FROM           the sender address (default: no-reply@localhost)
    FELLES_SMS_GATEWAY_URL     an HTTP endpoint taking POST {"to": ..., "text": ...} as JSON
    FELLES_SMS_GATEWAY_TOKEN   sent as `Authorization: Bearer ...` when set

Outside production a channel that is not configured writes each message as a JSON file
to `<data dir>/outbox/`, so the embedded default works with nothing to install and
tests can read what was sent. In production an unconfigured channel is an error: a
login code must never end up in a file.

Messages often carry secrets (login codes), so nothing here logs a message's text;
the log says only which channel was used and a masked recipient.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import SecretStr

from felles.config import Settings
from felles.web.observability import log

OUTBOX = "outbox"
DEFAULT_SENDER: str = Settings.model_fields["smtp_from"].default
TIMEOUT_SECONDS = 10.0
MAX_SMS_LENGTH = 612  # four concatenated SMS parts


class NotificationError(RuntimeError):
    """A message could not be handed over; safe to show operators (no message text)."""


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to hand over e-mail, parsed from FELLES_SMTP_URL."""

    host: str
    port: int
    tls: str  # "none", "starttls" or "implicit"
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        modes = {
            "smtp": ("none", 25),
            "smtp+starttls": ("starttls", 587),
            "smtps": ("implicit", 465),
        }
        if parts.scheme not in modes or not parts.hostname:
            raise ValueError(
                "FELLES_SMTP_URL must look like smtp://host:port, smtp+starttls://host:port "
                "or smtps://host:port"
            )
        tls, default_port = modes[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def mask_email(address: str) -> str:
    """`o***@example.no`: enough for a person to recognise, too little to harvest."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


def mask_phone(number: str) -> str:
    """`*** ** 567`: the last three digits only."""
    digits = [c for c in number if c.isdigit()]
    return "*** ** " + "".join(digits[-3:]) if len(digits) >= 3 else "***"


def _check_header(name: str, value: str) -> None:
    """A line break in a header would let the caller inject headers or recipients."""
    if not value or "\r" in value or "\n" in value or len(value) > 998:
        raise ValueError(f"{name} must be one non-empty line")


def _secret(value: SecretStr | None) -> str | None:
    return (value.get_secret_value() or None) if value is not None else None


class Notifier:
    """Hands e-mail to an SMTP server and SMS to a gateway, or to the dev outbox."""

    def __init__(
        self,
        *,
        smtp_url: str | None = None,
        sms_gateway_url: str | None = None,
        sms_gateway_token: str | None = None,
        sender: str = DEFAULT_SENDER,
        outbox_dir: Path | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.smtp = SmtpServer.from_url(smtp_url) if smtp_url else None
        self.sms_gateway_url = sms_gateway_url
        self.sms_gateway_token = sms_gateway_token
        _check_header("The sender", sender)
        self.sender = sender
        self.outbox_dir = outbox_dir
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        """FELLES_SMTP_* and FELLES_SMS_GATEWAY_* (see the module docstring)."""
        return cls(
            smtp_url=_secret(settings.smtp_url),
            sms_gateway_url=settings.sms_gateway_url or None,
            sms_gateway_token=_secret(settings.sms_gateway_token),
            sender=settings.smtp_from or DEFAULT_SENDER,
            outbox_dir=settings.data_dir / OUTBOX if settings.demo_allowed() else None,
        )

    # --- E-mail ---------------------------------------------------------------------

    async def send_email(self, to: str, subject: str, text: str) -> None:
        """Send a plain-text e-mail; raises NotificationError if it was not handed over."""
        _check_header("The recipient", to)
        _check_header("The subject", subject)
        if "@" not in to:
            raise ValueError("The recipient must be an e-mail address")
        if self.smtp is None:
            await self._to_outbox({"channel": "email", "to": to, "subject": subject, "text": text})
        else:
            message = EmailMessage()
            message["From"] = self.sender
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = formatdate(localtime=False)
            message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
            message.set_content(text)
            try:
                await asyncio.to_thread(self._send_smtp, self.smtp, message)
            except (smtplib.SMTPException, OSError) as exc:
                raise NotificationError(
                    f"The e-mail server {self.smtp.host}:{self.smtp.port} did not take the "
                    f"message ({type(exc).__name__})"
                ) from exc
        log.info("notification_sent", channel="email", to=mask_email(to))

    def _send_smtp(self, server: SmtpServer, message: EmailMessage) -> None:
        """Blocking SMTP, run in a worker thread so the event loop stays free."""
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if server.tls == "implicit":
            client = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout, context=context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with client:
            if server.tls == "starttls":
                client.starttls(context=context)
            if server.username:
                client.login(server.username, server.password or "")
            client.send_message(message)

    # --- SMS ------------------------------------------------------------------------

    async def send_sms(self, to: str, text: str) -> None:
        """Send an SMS through the gateway; raises NotificationError if it refused."""
        _check_header("The recipient", to)
        if not text or len(text) > MAX_SMS_LENGTH:
            raise ValueError(f"An SMS must have 1 to {MAX_SMS_LENGTH} characters")
        if self.sms_gateway_url is None:
            await self._to_outbox({"channel": "sms", "to": to, "text": text})
        else:
            headers = {"user-agent": "Felles"}
            if self.sms_gateway_token:
                headers["authorization"] = f"Bearer {self.sms_gateway_token}"
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.post(
                        self.sms_gateway_url, json={"to": to, "text": text}, headers=headers
                    )
            except httpx.HTTPError as exc:
                raise NotificationError(
                    f"The SMS gateway could not be reached ({type(exc).__name__})"
                ) from exc
            if not response.is_success:
                raise NotificationError(
                    f"The SMS gateway refused the message (HTTP {response.status_code})"
                )
        log.info("notification_sent", channel="sms", to=mask_phone(to))

    # --- The dev outbox -------------------------------------------------------------

    async def _to_outbox(self, message: dict[str, Any]) -> None:
        if self.outbox_dir is None:
            raise NotificationError(
                f"No {message['channel']} channel is configured: set "
                + ("FELLES_SMTP_URL" if message["channel"] == "email" else "FELLES_SMS_GATEWAY_URL")
            )
        message["at"] = time.time()
        await asyncio.to_thread(_write_outbox_file, self.outbox_dir, message)


def _write_outbox_file(outbox_dir: Path, message: dict[str, Any]) -> None:
    """Whole files only (written aside, then renamed), readable by the owner alone."""
    outbox_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{secrets.token_hex(4)}.json"
    temp = outbox_dir / f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(message, handle, ensure_ascii=False)
    temp.rename(outbox_dir / name)


def read_outbox(outbox_dir: Path) -> list[dict[str, Any]]:
    """The messages in the dev outbox, oldest first (for tests and `make run`)."""
    if not outbox_dir.is_dir():
        return []
    files = sorted(outbox_dir.glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]
