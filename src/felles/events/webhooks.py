"""The wire format: CloudEvents 1.0 in structured mode, signed per Standard Webhooks.

Receivers verify with any Standard Webhooks library (or six lines of HMAC) and parse
with any CloudEvents SDK; nothing here is our own invention.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTENT_TYPE = "application/cloudevents+json"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
MAX_ENDPOINT_LENGTH = 2000
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_NONCE = 12


class BadEndpoint(ValueError):
    """An endpoint URL the dispatcher will not POST to; the message says why."""


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the decoded secret."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cloudevent(event: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox row as a CloudEvent (the JSON object of structured mode)."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event["event_id"],
        "source": event["source"],
        "type": event["type"],
        "time": rfc3339(event["time"]),
        "datacontenttype": "application/json",
        "data": event["data"],
    }
    if event["subject"] is not None:
        body["subject"] = event["subject"]
    return body


def encode(event: Mapping[str, Any]) -> bytes:
    return json.dumps(cloudevent(event), separators=(",", ":"), ensure_ascii=False).encode()


def check_endpoint(url: str, *, local_http: bool, public_only: bool = False) -> str:
    """The URL if the dispatcher may POST to it: https (http only to this machine, when
    `local_http`), no credentials, at most 2000 characters; with `public_only`, not an
    address on a private, loopback or link-local network."""
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise BadEndpoint(f"The endpoint may be at most {MAX_ENDPOINT_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise BadEndpoint("The endpoint is not a valid URL") from None
    if not host or parts.scheme not in ("https", "http") or any(c.isspace() for c in url):
        raise BadEndpoint("The endpoint must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise BadEndpoint("The endpoint must not contain a user name or password")
    if parts.fragment:
        raise BadEndpoint("The endpoint must not have a fragment (#...)")
    if parts.scheme == "http" and not (local_http and _is_local(host)):
        raise BadEndpoint("The endpoint must use https")
    if public_only and not _may_be_public(host):
        raise BadEndpoint("The endpoint must be on the public internet")
    return url


def _may_be_public(host: str) -> bool:
    """False for an address literal that is not a global one (a name is checked when it
    is resolved, at every delivery)."""
    if host in LOCAL_HOSTS:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return True


class PublicAddresses:
    """Whether a host name resolves only to public addresses, so webhooks cannot be aimed
    at the servers inside Felles' own network (server-side request forgery). Answers are
    kept a minute per host."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self._known: dict[tuple[str, int], tuple[float, bool]] = {}

    async def allow(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        now = time.monotonic()
        known = self._known.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port)
            allowed = bool(found) and all(
                ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_global for info in found
            )
        except (OSError, ValueError):
            allowed = False
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[(host, port)] = (now + self.seconds, allowed)
        return allowed


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SecretBox:
    """Subscription secrets at rest: AES-GCM under the events key, bound to the
    subscription id, so a secret copied to another row does not open."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secret: str, subscription_id: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), subscription_id.encode())

    def open(self, blob: bytes, subscription_id: str) -> str:
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], subscription_id.encode()).decode()
