"""Pushed authorization requests sealed into their own request_uri.

RFC 9126 leaves the request_uri's format to the authorization server. Felles seals a
validated pushed request (with its client, expiry and a random id) into the value
itself, encrypted and authenticated with AES-256-GCM: pushing costs no database write
and the authorization endpoint no read. Only its use must be remembered: the login
records the id along with its own rows, in one statement, so a second use fails
(RFC 9126 section 4).

Keys are derived per day from the master key, so a day's pushes stay far below the
number of messages GCM's random nonces allow under one key; a value names its day.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from felles.identity.crypto import b64url, decrypt, encrypt

SEALED_PREFIX = "s."
DAY_SECONDS = 86_400
_CONTEXT = b"felles/identity/pushed-request"


class Sealer:
    """Seals and opens pushed requests with day keys derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self._keys: dict[int, bytes] = {}

    def _key(self, day: int) -> bytes:
        key = self._keys.get(day)
        if key is None:
            if len(self._keys) >= 4:
                self._keys.clear()
            info = b"%s/%d" % (_CONTEXT, day)
            key = HKDF(SHA256(), 32, salt=None, info=info).derive(self._master)
            self._keys[day] = key
        return key

    def seal(self, payload: dict[str, Any], at: float) -> str:
        day = int(at // DAY_SECONDS)
        plain = json.dumps(payload, separators=(",", ":")).encode()
        return f"{SEALED_PREFIX}{day}.{b64url(encrypt(self._key(day), plain, _CONTEXT))}"

    def open(self, value: str, at: float) -> dict[str, Any] | None:
        """The sealed payload; None if the value is not one we sealed today or yesterday
        (malformed, tampered with, another key)."""
        if not value.startswith(SEALED_PREFIX):
            return None
        day_text, _, blob_text = value[len(SEALED_PREFIX) :].partition(".")
        today = int(at // DAY_SECONDS)
        if not day_text.isdigit() or len(day_text) > 9 or int(day_text) not in (today, today - 1):
            return None
        try:
            blob = base64.urlsafe_b64decode(blob_text + "=" * (-len(blob_text) % 4))
            payload = json.loads(decrypt(self._key(int(day_text)), blob, _CONTEXT))
        except (ValueError, InvalidTag, binascii.Error):
            return None
        return payload if isinstance(payload, dict) else None
