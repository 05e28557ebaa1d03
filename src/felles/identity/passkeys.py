"""Passkeys (WebAuthn): a person registers passkeys and logs in with them at level high.

No HTTP here: `passkey_pages.py` turns requests into calls of these functions. The
checks of the ceremonies themselves (signatures, origin, RP ID, flags, attestation)
are py_webauthn's; this module adds what it leaves to the relying party:

- the challenge of each ceremony is made here and sealed in a short-lived value
  (HMAC under `keys/webauthn.key`) that names its purpose and is bound to the person
  (registration) or the pending authorization request (login); the browser holds it
  in a cookie, but cannot make or alter one;
- a challenge is spent once: its hash is recorded as a seen `jti` until it expires;
- the signature counter must go up when either side counts (a clone warning is
  audited and refused), and it is advanced with a compare-and-set, so two logins
  with one assertion cannot both pass;
- user verification is required: a passkey proves possession and the person's
  fingerprint, face or PIN (two factors), which is why it gives `idporten-loa-high`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from felles.config import Settings
from felles.identity import levels
from felles.identity.client_auth import remember_jti
from felles.identity.methods import N_
from felles.identity.models import AuditEvent, PasskeyCredential
from felles.identity.service import Authenticated
from felles.registry import service as registry
from felles.registry.numbers import mask_pid
from felles.web.observability import log

REGISTER = "register"
LOGIN = "login"
CHALLENGE_SECONDS = 5 * 60  # how long a ceremony may take, from page to answer
BROWSER_TIMEOUT_MS = 3 * 60 * 1000  # what the browser is told (less than the above)
MAX_PASSKEYS = 10  # per person; also bounds the exclude list sent to the browser
NAME_LENGTH = 100  # PasskeyCredential.name
MAX_CREDENTIAL_ID = 1023  # WebAuthn: credential ids are at most 1023 bytes
AMR = ("hwk",)  # proof of possession of a hardware-protected key (RFC 8176)
METHOD = "passkey"
SEEN_ISSUER = "webauthn"  # the SeenJti namespace of spent challenges


class PasskeyError(Exception):
    """A ceremony we refuse. `message` is English source text for the person (the page
    translates it); `reason` is for logs and tests."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(reason)
        self.message = message
        self.reason = reason


class CloneWarning(PasskeyError):
    """The signature counter did not go up: the key may have been copied. The refusal
    is audited, so the caller must commit the session (not roll it back)."""


# What people read when a ceremony fails (English source text, translated on the page).
TRY_AGAIN = N_("We could not check your passkey. Try again.")
EXPIRED = N_("It took too long, or the page was used already. Try again.")
UNKNOWN = N_(
    "This passkey is not registered with Felles. Log in another way, "
    "and add the passkey on your account page."
)
NOT_VERIFIED = N_(
    "Your device did not check your fingerprint, face or PIN. Use a device that can, and try again."
)
REFUSED = N_("We cannot accept this passkey. Log in another way.")
ALREADY_ADDED = N_("This passkey has already been added.")
TOO_MANY = N_("You have reached the maximum number of passkeys. Remove one before you add another.")


def now() -> datetime:
    return datetime.now(UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- The relying party -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys belong to: the host of the base URL, and the origin pages use."""

    id: str
    origin: str
    name: str = "Felles"

    @classmethod
    def from_settings(cls, settings: Settings) -> RelyingParty:
        url = urlparse(settings.base_url)
        return cls(id=(url.hostname or "").lower(), origin=f"{url.scheme}://{url.netloc}")

    @property
    def usable(self) -> bool:
        """Browsers allow WebAuthn only for a domain name (not an IP address) in a secure
        context: https, or http on localhost."""
        if not self.id or _is_ip_address(self.id):
            return False
        secure = self.origin.startswith("https://")
        return secure or self.id == "localhost" or self.id.endswith(".localhost")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def available(settings: Settings) -> bool:
    """Whether passkeys can work at this base URL (the login method is offered only then)."""
    return RelyingParty.from_settings(settings).usable


# --- Sealed challenges -------------------------------------------------------------------


class ChallengeSeal:
    """A challenge, its expiry and an HMAC over (purpose, binding, challenge, expiry).

    The binding (a national identity number, or a pending request's id) is covered by
    the MAC but not carried, so the sealed value names no one.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _mac(self, purpose: str, bound_to: str, challenge: bytes, expires: int) -> str:
        message = f"{purpose}|{bound_to}|{_b64(challenge)}|{expires}".encode()
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())

    def seal(self, purpose: str, bound_to: str, challenge: bytes, expires: datetime) -> str:
        stamp = int(expires.timestamp())
        return f"{_b64(challenge)}.{stamp}.{self._mac(purpose, bound_to, challenge, stamp)}"

    def open(
        self, sealed: str | None, purpose: str, bound_to: str, at: datetime | None = None
    ) -> tuple[bytes, datetime]:
        """The challenge and its expiry, or PasskeyError when forged, foreign or stale."""
        if not sealed or len(sealed) > 300 or sealed.count(".") != 2:
            raise PasskeyError(EXPIRED, "no challenge (or a malformed one) for this ceremony")
        encoded, stamp, mac = sealed.split(".")
        try:
            challenge = _unb64(encoded)
            expires = int(stamp)
        except ValueError:
            raise PasskeyError(EXPIRED, "malformed challenge") from None
        if not hmac.compare_digest(mac, self._mac(purpose, bound_to, challenge, expires)):
            raise PasskeyError(EXPIRED, "challenge not issued for this ceremony")
        expires_at = datetime.fromtimestamp(expires, UTC)
        if expires_at <= (at or now()):
            raise PasskeyError(EXPIRED, "challenge expired")
        return challenge, expires_at


@dataclass(frozen=True, slots=True)
class Ceremony:
    """What a page needs to start one: the options for the browser (JSON) and the sealed
    challenge to hand back with the answer."""

    options_json: str
    sealed: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PasskeyRecord:
    """A registered passkey as the account page shows it."""

    credential_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: PasskeyCredential) -> PasskeyRecord:
    return PasskeyRecord(
        credential_id=row.credential_id,
        name=row.name,
        created_at=_aware(row.created_at),
        last_used_at=_aware(row.last_used_at) if row.last_used_at else None,
    )


def clean_name(raw: str | None) -> str:
    """A passkey's name as typed, without control characters, at most NAME_LENGTH long."""
    spaced = " ".join((raw or "").split())  # tabs and line breaks become one space
    return "".join(c for c in spaced if c.isprintable()).strip()[:NAME_LENGTH]


def _transports(values: list[str]) -> list[AuthenticatorTransport]:
    known = {t.value for t in AuthenticatorTransport}
    return [AuthenticatorTransport(v) for v in values if v in known]


# Malformed input makes py_webauthn (and the CBOR and ASN.1 parsers under it) raise more
# than its own exceptions; every one of them means the same: the answer is refused.
_BAD_INPUT = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)


# --- The service -------------------------------------------------------------------------


class Passkeys:
    """Registration and login ceremonies for one relying party (one base URL)."""

    def __init__(self, settings: Settings, key: bytes) -> None:
        self.rp = RelyingParty.from_settings(settings)
        self.key = key
        self.seal = ChallengeSeal(key)

    def user_handle(self, pid: str) -> bytes:
        """The WebAuthn user id: stable per person, but not their number (it is stored on
        the device and, for synced passkeys, in the cloud)."""
        return hmac.new(self.key, f"user-handle|{pid}".encode(), hashlib.sha256).digest()

    # Registration ------------------------------------------------------------------

    async def registration_options(self, session: AsyncSession, pid: str) -> Ceremony:
        """Options for `navigator.credentials.create` for this person."""
        existing = (
            await session.scalars(select(PasskeyCredential).where(PasskeyCredential.pid == pid))
        ).all()
        person = await registry.find_person(
            session, pid, registry.Access("identity", "Passkey registration")
        )
        label = person.full_name if person is not None else mask_pid(pid)
        challenge = secrets.token_bytes(32)
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_id=self.user_handle(pid),
            user_name=label,
            user_display_name=label,
            challenge=challenge,
            timeout=BROWSER_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(
                    id=_unb64(row.credential_id), transports=_transports(row.transports)
                )
                for row in existing
            ],
        )
        expires = now() + timedelta(seconds=CHALLENGE_SECONDS)
        return Ceremony(
            options_to_json(options), self.seal.seal(REGISTER, pid, challenge, expires), expires
        )

    async def register(
        self,
        session: AsyncSession,
        pid: str,
        sealed: str | None,
        credential: dict[str, Any] | str,
        name: str | None = None,
    ) -> PasskeyRecord:
        """Check the browser's answer to `registration_options` and keep the passkey."""
        challenge, expires = self.seal.open(sealed, REGISTER, pid)
        count = await session.scalar(
            select(func.count()).select_from(PasskeyCredential).where(PasskeyCredential.pid == pid)
        )
        if (count or 0) >= MAX_PASSKEYS:
            raise PasskeyError(TOO_MANY, "too many passkeys")
        await self._spend(session, challenge, expires)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp.id,
                expected_origin=self.rp.origin,
                require_user_verification=True,
            )
        except _BAD_INPUT as exc:
            log.info("passkey_registration_refused", reason=str(exc)[:200])
            raise PasskeyError(_message_for(exc), f"registration refused: {exc}") from None
        if len(verified.credential_id) > MAX_CREDENTIAL_ID:
            raise PasskeyError(TRY_AGAIN, "credential id too long")
        credential_id = bytes_to_base64url(verified.credential_id)
        if await session.get(PasskeyCredential, credential_id) is not None:
            raise PasskeyError(ALREADY_ADDED, "credential already registered")
        current = now()
        row = PasskeyCredential(
            credential_id=credential_id,
            pid=pid,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=_answer_transports(credential),
            name=clean_name(name),
            created_at=current,
            last_used_at=None,
        )
        session.add(row)
        _audit(session, "passkey_added", pid, {"credential": credential_id[:16]})
        await session.flush()
        return _record(row)

    # Login -------------------------------------------------------------------------

    def login_options(self, pending_id: str) -> Ceremony:
        """Options for `navigator.credentials.get`: any passkey of this site (discoverable
        credentials, so the person types nothing), bound to the pending request."""
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=challenge,
            timeout=BROWSER_TIMEOUT_MS,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        expires = now() + timedelta(seconds=CHALLENGE_SECONDS)
        return Ceremony(
            options_to_json(options), self.seal.seal(LOGIN, pending_id, challenge, expires), expires
        )

    async def login(
        self,
        session: AsyncSession,
        pending_id: str,
        sealed: str | None,
        credential: dict[str, Any] | str,
    ) -> Authenticated:
        """Check the browser's answer to `login_options`: who it is, at level high."""
        challenge, expires = self.seal.open(sealed, LOGIN, pending_id)
        try:
            parsed = parse_authentication_credential_json(credential)
        except _BAD_INPUT as exc:
            raise PasskeyError(TRY_AGAIN, f"malformed assertion: {exc}") from None
        if len(parsed.raw_id) > MAX_CREDENTIAL_ID:
            raise PasskeyError(TRY_AGAIN, "credential id too long")
        credential_id = bytes_to_base64url(parsed.raw_id)
        row = await session.get(PasskeyCredential, credential_id)
        if row is None:
            raise PasskeyError(UNKNOWN, "unknown credential")
        await self._spend(session, challenge, expires)
        try:
            # The counter is checked below, after the signature, to tell a clone apart.
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.rp.id,
                expected_origin=self.rp.origin,
                credential_public_key=row.public_key,
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except _BAD_INPUT as exc:
            log.info("passkey_login_refused", reason=str(exc)[:200])
            raise PasskeyError(_message_for(exc), f"assertion refused: {exc}") from None
        handle = parsed.response.user_handle
        if handle is not None and not hmac.compare_digest(handle, self.user_handle(row.pid)):
            raise PasskeyError(REFUSED, "user handle does not match the credential's owner")
        stored, presented = row.sign_count, verified.new_sign_count
        if (stored or presented) and presented <= stored:
            _audit(
                session,
                "passkey_clone_warning",
                row.pid,
                {"credential": credential_id[:16], "stored": stored, "presented": presented},
            )
            raise CloneWarning(REFUSED, f"sign count {presented} not above {stored}")
        advanced = await session.execute(
            update(PasskeyCredential)
            .where(
                PasskeyCredential.credential_id == credential_id,
                PasskeyCredential.sign_count == stored,
            )
            .values(sign_count=presented, last_used_at=now())
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            raise PasskeyError(TRY_AGAIN, "credential used concurrently or removed")
        return Authenticated(pid=row.pid, acr=levels.HIGH, amr=AMR, method=METHOD)

    # The person's passkeys ---------------------------------------------------------

    async def list_for(self, session: AsyncSession, pid: str) -> list[PasskeyRecord]:
        rows = await session.scalars(
            select(PasskeyCredential)
            .where(PasskeyCredential.pid == pid)
            .order_by(PasskeyCredential.created_at, PasskeyCredential.credential_id)
        )
        return [_record(row) for row in rows]

    async def remove(self, session: AsyncSession, pid: str, credential_id: str) -> bool:
        """Remove one of the person's own passkeys; False when they have no such passkey."""
        row = await session.get(PasskeyCredential, credential_id) if credential_id else None
        if row is None or row.pid != pid:
            return False
        await session.delete(row)
        _audit(session, "passkey_removed", pid, {"credential": credential_id[:16]})
        return True

    # Helpers ---------------------------------------------------------------------------

    async def _spend(self, session: AsyncSession, challenge: bytes, expires: datetime) -> None:
        """A challenge works once (a replayed answer is refused, whatever it carries)."""
        digest = hashlib.sha256(challenge).hexdigest()
        if not await remember_jti(session, SEEN_ISSUER, digest, expires.timestamp()):
            raise PasskeyError(EXPIRED, "challenge already used")


def _message_for(exc: Exception) -> str:
    if "verification is required" in str(exc):
        return NOT_VERIFIED
    return TRY_AGAIN


def _answer_transports(credential: dict[str, Any] | str) -> list[str]:
    """The transports the browser reported (hints for later exclude lists), known ones only."""
    try:
        body = json.loads(credential) if isinstance(credential, str) else credential
        values = body["response"].get("transports") or []
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    known = {t.value for t in AuthenticatorTransport}
    return [v for v in values if isinstance(v, str) and v in known][:8]


def _audit(session: AsyncSession, event: str, pid: str, detail: dict[str, Any]) -> None:
    session.add(
        AuditEvent(at=now(), event=event, pid=pid, client_id=None, session_id=None, detail=detail)
    )
