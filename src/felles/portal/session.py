"""The portal's login session: who is logged in, at what level, and for whom they act.

The session lives in one sealed cookie (AES-256-GCM under a key derived from the master
key), so any app process can read it and nothing is stored per visit. It slides: every
page renews it for `IDLE` more, up to `ABSOLUTE` after the login. National identity
numbers are inside the sealed value only, never in a URL or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from felles.identity.crypto import b64url, decrypt, encrypt
from felles.portal.models import PartyKind

COOKIE = "felles_portal"
IDLE = 30 * 60
ABSOLUTE = 8 * 3600
# Warn this long before the session ends (the page says when; with JavaScript, a dialog).
WARN_BEFORE = 5 * 60


@dataclass(frozen=True, slots=True)
class Party:
    """Whom the person acts for: themself or a business."""

    kind: PartyKind
    id: str
    name: str

    @property
    def is_person(self) -> bool:
        return self.kind is PartyKind.person


@dataclass(frozen=True, slots=True)
class PortalSession:
    pid: str
    name: str
    acr: str
    sid: str
    auth_time: int
    expires_at: int
    party: Party
    id_token: str = ""

    def renewed(self, now: float | None = None) -> PortalSession:
        at = int(now if now is not None else time.time())
        return replace(self, expires_at=min(at + IDLE, self.auth_time + ABSOLUTE))

    def acting_as(self, party: Party) -> PortalSession:
        return replace(self, party=party)

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at


class SessionSealer:
    """Seals and opens the session cookie (and other small portal values)."""

    def __init__(self, master_key: bytes) -> None:
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"felles portal session"
        ).derive(master_key)

    def seal(self, value: dict[str, Any], context: bytes) -> str:
        data = json.dumps(value, separators=(",", ":")).encode()
        return b64url(encrypt(self._key, data, context))

    def open(self, sealed: str | None, context: bytes) -> dict[str, Any] | None:
        if not sealed or len(sealed) > 3800:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            value = json.loads(decrypt(self._key, raw, context))
        except (InvalidTag, ValueError, binascii.Error):
            return None
        return value if isinstance(value, dict) else None

    def seal_session(self, session: PortalSession) -> str:
        value = asdict(session)
        value["party"] = {**value["party"], "kind": session.party.kind.value}
        return self.seal(value, b"session")

    def open_session(self, sealed: str | None, now: float | None = None) -> PortalSession | None:
        """The session in the cookie, or None if there is none, it was tampered with or
        it has expired."""
        value = self.open(sealed, b"session")
        if value is None:
            return None
        try:
            party = value.pop("party")
            session = PortalSession(
                **value, party=Party(PartyKind(party["kind"]), party["id"], party["name"])
            )
        except (TypeError, KeyError, ValueError):
            return None
        return None if session.expired(now) else session
