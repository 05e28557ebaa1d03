"""The "password and one-time code" login method: its rules and its stored secrets.

A person proves who they are with their national identity number, a password only
they know, and then something they have: an authenticator app (TOTP, RFC 6238) or a
six-digit code sent to the mobile number or e-mail address in the contact register.
That gives the level idporten-loa-substantial.

No HTTP here: `password_pages.py` turns requests into calls of `PasswordLogin`.

What protects the method, and why:

- Passwords are hashed with argon2id at OWASP's recommended cost (19 MiB, 2 passes):
  the RFC 9106 default (64 MiB, 4 lanes) times every concurrent login on tax-return
  day would need gigabytes of memory. Hashes made with older parameters are redone
  at the next correct login. Hashing runs in a worker thread, never on the event loop.
- An identity number without a password is checked against a dummy hash, so the time
  an answer takes does not tell who has a password.
- Failed passwords are counted per account whether or not it exists (the key is a
  keyed hash of the identity number); the fifth within an hour locks the account for
  15 minutes, during which even the right password is refused. Each address may try
  30 times in 5 minutes.
- One-time codes are stored as an HMAC under a key derived from the master key (a
  database dump alone does not reveal them), live 5 minutes and allow 5 attempts.
- A TOTP code works once: the time step it came from is remembered (`last_step`),
  and the update that records it only succeeds if the step is newer, so two requests
  racing with the same code cannot both win.
- Between the password page and the code page the state (who, which step, which code)
  travels in a hidden field, encrypted and authenticated under the master key and
  bound to the authorization request: never the identity number in the clear.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, cast

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import Database
from felles.identity import crypto
from felles.identity.models import AuditEvent, OneTimeCode, PasswordCredential, TotpCredential
from felles.identity.ratelimit import RateLimiter, rate_limiter
from felles.notifications.service import Notifier, mask_email, mask_phone
from felles.registry import service as registry
from felles.registry.numbers import InvalidNumber, mask_pid, parse_pid

METHOD = "password"

MIN_LENGTH = 10
MAX_LENGTH = 128  # argon2 copes with more; people do not need more
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

CODE_DIGITS = 6
CODE_SECONDS = 5 * 60
CODE_ATTEMPTS = 5
STATE_SECONDS = 15 * 60  # from a correct password to the code, at most

TOTP_ISSUER = "Felles"
TOTP_DRIFT_STEPS = 1  # a code from the step before or after also works

IP_ATTEMPTS, IP_WINDOW = 30, 5 * 60  # password attempts per address
PASSWORD_FAILURES, FAILURE_WINDOW = 5, 60 * 60  # wrong passwords per account ...
LOCK_SECONDS = 15 * 60  # ... lock it for this long
CODE_IP_ATTEMPTS, CODE_IP_WINDOW = 30, 5 * 60  # code attempts per address
CODE_FAILURES, CODE_FAILURE_WINDOW = 10, 15 * 60  # wrong codes per account
SENDS, SEND_WINDOW = 5, 60 * 60  # codes sent per account (SMS costs money)

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rowcount(result: Any) -> int:
    return int(cast(Any, result).rowcount or 0)


# --- Password rules -----------------------------------------------------------------


class PasswordProblem(StrEnum):
    """Why a new password is refused (the pages word each for people)."""

    missing = "missing"
    too_short = "too_short"
    too_long = "too_long"
    too_common = "too_common"
    personal = "personal"
    mismatch = "mismatch"


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def _personal_numbers(pid: str) -> set[str]:
    """The identity number and the birth date as people write it in digits."""
    numbers = {pid, pid[:6]}
    try:
        born = parse_pid(pid).birth_date
    except InvalidNumber:
        return numbers
    numbers |= {
        born.strftime("%d%m%y"),
        born.strftime("%d%m%Y"),
        born.strftime("%Y%m%d"),
    }
    return numbers


def password_problems(password: str, again: str | None, pid: str) -> list[PasswordProblem]:
    """What is wrong with a new password (empty when it may be used)."""
    if not password:
        return [PasswordProblem.missing]
    problems: list[PasswordProblem] = []
    if len(password) < MIN_LENGTH:
        problems.append(PasswordProblem.too_short)
    elif len(password) > MAX_LENGTH:
        problems.append(PasswordProblem.too_long)
    elif password.lower() in common_passwords():
        problems.append(PasswordProblem.too_common)
    digits = re.sub(r"\D", "", password)
    if digits and any(number in digits for number in _personal_numbers(pid)):
        problems.append(PasswordProblem.personal)
    if again is not None and again != password:
        problems.append(PasswordProblem.mismatch)
    return problems


def _verify_hash(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when a person has no password."""
    return HASHER.hash(secrets.token_urlsafe(32))


# --- Outcomes -----------------------------------------------------------------------


class PasswordResult(StrEnum):
    ok = "ok"
    wrong = "wrong"  # wrong number or wrong password: never told apart
    locked = "locked"
    ip_limited = "ip_limited"


@dataclass(frozen=True, slots=True)
class PasswordAttempt:
    result: PasswordResult
    retry_after: int = 0  # seconds, when locked or limited
    just_locked: bool = False  # this attempt was the one that locked the account


class CodeResult(StrEnum):
    ok = "ok"
    wrong = "wrong"
    reused = "reused"  # a TOTP code (or its time step) already used
    expired = "expired"
    used = "used"  # a sent code already used
    exhausted = "exhausted"  # too many attempts at this sent code
    limited = "limited"  # too many wrong codes from this account or address


@dataclass(frozen=True, slots=True)
class CodeAttempt:
    result: CodeResult
    retry_after: int = 0
    attempts_left: int = 0


class Step(StrEnum):
    choose = "choose"  # choose SMS or e-mail
    code = "code"  # a code was sent
    totp = "totp"  # a code from the authenticator app


@dataclass(frozen=True, slots=True)
class LoginState:
    """Where a person is between a correct password and a correct code."""

    pid: str
    step: Step
    otc_id: str | None = None
    channel: str | None = None  # "sms" or "email" for a sent code
    to: str = ""  # the masked destination, to show


@dataclass(frozen=True, slots=True)
class Channels:
    """Where a code can be sent, from the contact register."""

    mobile: str | None
    email: str | None

    def available(self) -> list[str]:
        return [name for name, value in (("sms", self.mobile), ("email", self.email)) if value]

    def address(self, channel: str) -> str | None:
        return self.mobile if channel == "sms" else self.email if channel == "email" else None

    def masked(self, channel: str) -> str:
        address = self.address(channel) or ""
        return mask_phone(address) if channel == "sms" else mask_email(address)


# --- The service --------------------------------------------------------------------


class PasswordLogin:
    """One per app process: the rate limiter, the notifier and keys from the master key."""

    def __init__(
        self, db: Database, limiter: RateLimiter, notifier: Notifier, master_key: bytes
    ) -> None:
        self.db = db
        self.limiter = limiter
        self.notifier = notifier
        self._master_key = master_key
        self._code_key = self._derive(b"one-time code")
        self._account_salt = self._derive(b"rate limit account").hex()

    @classmethod
    def create(cls, settings: Settings, db: Database) -> PasswordLogin:
        return cls(
            db,
            rate_limiter(settings, db),
            Notifier.from_settings(settings),
            crypto.master_key(settings),
        )

    def _derive(self, purpose: bytes) -> bytes:
        return hmac.new(self._master_key, b"felles password login|" + purpose, "sha256").digest()

    def account_key(self, pid: str) -> str:
        """A stand-in for the identity number in rate-limit keys (keyed: not reversible
        by hashing every possible number)."""
        return crypto.token_hash(self._account_salt + pid)[:40]

    # --- Passwords ------------------------------------------------------------------

    async def has_password(self, session: AsyncSession, pid: str) -> bool:
        return await session.get(PasswordCredential, pid) is not None

    async def set_password(self, pid: str, password: str, *, reference: str | None = None) -> bool:
        """Store a new password (checked by `password_problems` first); True if it
        replaced one. Its own session, like `attempt_password`."""
        hashed = await asyncio.to_thread(HASHER.hash, password)
        async with self.db.session() as session:
            row = await session.get(PasswordCredential, pid)
            current = now()
            if row is None:
                session.add(
                    PasswordCredential(
                        pid=pid, password_hash=hashed, created_at=current, updated_at=current
                    )
                )
            else:
                row.password_hash, row.updated_at = hashed, current
            event = "password_changed" if row else "password_set"
            audit(session, event, pid, None, reference=reference)
        # The person proved who they are another way: a fresh start for the lockout.
        await self.limiter.reset(f"pw-fail:{self.account_key(pid)}")
        await self.limiter.reset(f"pw-lock:{self.account_key(pid)}")
        return row is not None

    async def verify_password(self, session: AsyncSession, pid: str, password: str) -> bool:
        """Same work whether or not the person has a password; rehash when the
        parameters changed since the hash was made."""
        row = await session.get(PasswordCredential, pid)
        stored = row.password_hash if row else await asyncio.to_thread(_dummy_hash)
        ok = await asyncio.to_thread(_verify_hash, stored, password)
        if row is None or not ok:
            return False
        if HASHER.check_needs_rehash(stored):
            row.password_hash = await asyncio.to_thread(HASHER.hash, password)
            row.updated_at = now()
        return True

    async def _audit(
        self, event: str, pid: str | None, client_id: str | None, **detail: Any
    ) -> None:
        async with self.db.session() as session:
            audit(session, event, pid, client_id, **detail)

    async def attempt_password(
        self, pid: str, password: str, *, ip: str, client_id: str | None
    ) -> PasswordAttempt:
        """One try at the password page, with the address limit and the lockout.

        Opens its own short sessions and never calls the rate limiter inside one: on
        SQLite a write transaction held across a limiter call would wait on itself.
        """
        by_ip = await self.limiter.hit(f"login-ip:{ip}", IP_ATTEMPTS, IP_WINDOW)
        if not by_ip.allowed:
            await self._audit("login_failed", None, client_id, reason="ip_limited", ip=ip)
            return PasswordAttempt(PasswordResult.ip_limited, by_ip.retry_after)
        account = self.account_key(pid)
        lock = await self.limiter.peek(f"pw-lock:{account}", 1, LOCK_SECONDS)
        if not lock.allowed:
            async with self.db.session() as session:
                named = pid if await self.has_password(session, pid) else None
            await self._audit("login_failed", named, client_id, reason="locked", ip=ip)
            return PasswordAttempt(PasswordResult.locked, lock.retry_after)
        async with self.db.session() as session:
            ok = await self.verify_password(session, pid, password)
            known = ok or await self.has_password(session, pid)
        if ok:
            await self.limiter.reset(f"pw-fail:{account}")
            return PasswordAttempt(PasswordResult.ok)
        named = pid if known else None  # the audit names only people with a password
        failures = await self.limiter.hit(f"pw-fail:{account}", PASSWORD_FAILURES, FAILURE_WINDOW)
        await self._audit("login_failed", named, client_id, reason="wrong_password", ip=ip)
        if failures.count >= PASSWORD_FAILURES:
            await self.limiter.reset(f"pw-fail:{account}")
            await self.limiter.hit(f"pw-lock:{account}", 1, LOCK_SECONDS)
            await self._audit("locked_out", named, client_id, ip=ip)
            return PasswordAttempt(PasswordResult.locked, LOCK_SECONDS, just_locked=True)
        return PasswordAttempt(PasswordResult.wrong)

    # --- Where to send a code -------------------------------------------------------

    async def channels(self, session: AsyncSession, pid: str) -> Channels:
        """The person's mobile number and e-mail address in the contact register."""
        try:
            contact = await registry.contact(
                session, pid, registry.Access("identity", "send login code")
            )
        except registry.NotFound:
            return Channels(None, None)
        if contact is None:
            return Channels(None, None)
        return Channels(contact.mobile or None, contact.email or None)

    async def may_send(self, pid: str) -> int:
        """0 if another code may be sent now, else the seconds to wait."""
        decision = await self.limiter.hit(f"send:{self.account_key(pid)}", SENDS, SEND_WINDOW)
        return decision.retry_after

    # --- Sent one-time codes --------------------------------------------------------

    def _code_hash(self, otc_id: str, code: str) -> str:
        return hmac.new(self._code_key, f"{otc_id}|{code}".encode(), hashlib.sha256).hexdigest()

    async def issue_code(self, session: AsyncSession, pid: str, channel: str) -> tuple[str, str]:
        """A fresh code for one login: (its id, the code to send)."""
        otc_id = crypto.random_token(24)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        session.add(
            OneTimeCode(
                id=otc_id,
                pid=pid,
                channel=channel,
                code_hash=self._code_hash(otc_id, code),
                attempts=0,
                expires_at=now() + timedelta(seconds=CODE_SECONDS),
            )
        )
        await session.flush()
        return otc_id, code

    async def check_code(
        self, session: AsyncSession, otc_id: str, pid: str, code: str
    ) -> CodeAttempt:
        """Check a sent code: each try is counted atomically before the comparison."""
        row = await session.get(OneTimeCode, otc_id)
        if row is None or row.pid != pid:
            return CodeAttempt(CodeResult.expired)
        if row.used_at is not None:
            return CodeAttempt(CodeResult.used)
        if _aware(row.expires_at) <= now():
            return CodeAttempt(CodeResult.expired)
        counted = await session.execute(
            update(OneTimeCode)
            .where(
                OneTimeCode.id == otc_id,
                OneTimeCode.attempts < CODE_ATTEMPTS,
                OneTimeCode.used_at.is_(None),
            )
            .values(attempts=OneTimeCode.attempts + 1)
            .returning(OneTimeCode.attempts)
        )
        attempts = counted.scalar_one_or_none()
        if attempts is None:
            return CodeAttempt(CodeResult.exhausted)
        if not hmac.compare_digest(self._code_hash(otc_id, code), row.code_hash):
            left = CODE_ATTEMPTS - attempts
            return CodeAttempt(
                CodeResult.wrong if left else CodeResult.exhausted, attempts_left=left
            )
        claimed = await session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.id == otc_id, OneTimeCode.used_at.is_(None))
            .values(used_at=now())
        )
        return CodeAttempt(CodeResult.ok if _rowcount(claimed) == 1 else CodeResult.used)

    async def attempt_code(
        self, state: LoginState, code: str, *, ip: str, client_id: str | None
    ) -> CodeAttempt:
        """One try at the code page (sent code or authenticator app), rate limited.
        Its own sessions, like `attempt_password`."""
        by_ip = await self.limiter.hit(f"code-ip:{ip}", CODE_IP_ATTEMPTS, CODE_IP_WINDOW)
        failures_key = f"code-fail:{self.account_key(state.pid)}"
        if not by_ip.allowed:
            await self._audit("login_failed", state.pid, client_id, reason="ip_limited", ip=ip)
            return CodeAttempt(CodeResult.limited, by_ip.retry_after)
        blocked = await self.limiter.peek(failures_key, CODE_FAILURES, CODE_FAILURE_WINDOW)
        if not blocked.allowed:
            await self._audit("login_failed", state.pid, client_id, reason="code_limited", ip=ip)
            return CodeAttempt(CodeResult.limited, blocked.retry_after)
        async with self.db.session() as session:
            if state.step is Step.totp:
                outcome = CodeAttempt(await self.verify_totp(session, state.pid, code))
            elif state.otc_id:
                outcome = await self.check_code(session, state.otc_id, state.pid, code)
            else:
                outcome = CodeAttempt(CodeResult.expired)
        if outcome.result is CodeResult.ok:
            await self.limiter.reset(failures_key)
            return outcome
        if outcome.result in (CodeResult.wrong, CodeResult.reused, CodeResult.exhausted):
            await self.limiter.hit(failures_key, CODE_FAILURES, CODE_FAILURE_WINDOW)
        await self._audit(
            "login_failed",
            state.pid,
            client_id,
            reason=f"code_{outcome.result.value}",
            factor=state.channel or "totp",
            ip=ip,
        )
        return outcome

    # --- Authenticator apps (TOTP) --------------------------------------------------

    def _totp_context(self, pid: str) -> bytes:
        return b"identity_totp|" + pid.encode()

    def _secret(self, row: TotpCredential) -> str:
        return crypto.decrypt(self._master_key, row.secret, self._totp_context(row.pid)).decode()

    async def has_totp(self, session: AsyncSession, pid: str) -> bool:
        row = await session.get(TotpCredential, pid)
        return row is not None and row.confirmed_at is not None

    async def begin_totp(self, session: AsyncSession, pid: str) -> str:
        """The secret to show while enrolling; the same one until confirmed, so a
        reload does not invalidate what the app already scanned."""
        row = await session.get(TotpCredential, pid)
        if row is not None and row.confirmed_at is not None:
            raise ValueError("An authenticator app is already set up; remove it first")
        if row is not None:
            return self._secret(row)
        secret = pyotp.random_base32()
        sealed = crypto.encrypt(self._master_key, secret.encode(), self._totp_context(pid))
        session.add(TotpCredential(pid=pid, secret=sealed, confirmed_at=None, last_step=0))
        await session.flush()
        return secret

    async def confirm_totp(
        self, session: AsyncSession, pid: str, code: str, *, reference: str | None = None
    ) -> bool:
        """The first code from the app proves it was set up right."""
        row = await session.get(TotpCredential, pid)
        if row is None or row.confirmed_at is not None:
            return False
        step = matching_step(self._secret(row), code, time.time())
        if step is None:
            return False
        row.confirmed_at, row.last_step = now(), step
        audit(session, "totp_added", pid, None, reference=reference)
        return True

    async def verify_totp(self, session: AsyncSession, pid: str, code: str) -> CodeResult:
        row = await session.get(TotpCredential, pid)
        if row is None or row.confirmed_at is None:
            return CodeResult.wrong
        step = matching_step(self._secret(row), code, time.time())
        if step is None:
            return CodeResult.wrong
        claimed = await session.execute(
            update(TotpCredential)
            .where(
                TotpCredential.pid == pid,
                TotpCredential.last_step < step,
                TotpCredential.confirmed_at.is_not(None),
            )
            .values(last_step=step)
        )
        return CodeResult.ok if _rowcount(claimed) == 1 else CodeResult.reused

    async def remove_totp(
        self, session: AsyncSession, pid: str, *, reference: str | None = None
    ) -> bool:
        row = await session.get(TotpCredential, pid)
        if row is None:
            return False
        await session.delete(row)
        if row.confirmed_at is not None:
            audit(session, "totp_removed", pid, None, reference=reference)
        return True

    # --- The state between the pages ------------------------------------------------

    def _state_context(self, auth: str) -> bytes:
        return b"felles password login state|" + auth.encode()

    def seal(self, auth: str, state: LoginState) -> str:
        """The hidden field that carries `state` to the next page of this login only."""
        payload = {
            "pid": state.pid,
            "step": state.step.value,
            "otc": state.otc_id,
            "channel": state.channel,
            "to": state.to,
            "exp": int(time.time()) + STATE_SECONDS,
        }
        blob = crypto.encrypt(
            self._master_key, json.dumps(payload).encode(), self._state_context(auth)
        )
        return crypto.b64url(blob)

    def unseal(self, auth: str, token: str) -> LoginState | None:
        """The state, or None if forged, for another login, or too old."""
        if not token or len(token) > 1000:
            return None
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(crypto.decrypt(self._master_key, blob, self._state_context(auth)))
            if int(payload["exp"]) < time.time():
                return None
            return LoginState(
                pid=str(payload["pid"]),
                step=Step(payload["step"]),
                otc_id=payload.get("otc"),
                channel=payload.get("channel"),
                to=str(payload.get("to") or ""),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, InvalidTag):
            return None


def matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step whose code this is, within the allowed drift, or None."""
    code = code.replace(" ", "")
    if len(code) != CODE_DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(at)
    found: int | None = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # keep looking: the same work whatever matched
    return found


def provisioning_uri(secret: str, pid: str) -> str:
    """The otpauth:// link an authenticator app reads; labelled with the masked number
    (the person sees which account it is, the app never holds the full number)."""
    return pyotp.TOTP(secret).provisioning_uri(name=mask_pid(pid), issuer_name=TOTP_ISSUER)


def qr_data_uri(text: str, scale: int = 5) -> tuple[str, int]:
    """A QR code as an SVG data: URI (the CSP allows data: images, not inline styles)
    and its width in pixels. Dark on white, so phones in dark mode read it too."""
    import segno  # only the enrolment page needs it

    code = segno.make(text, error="m")
    width, _ = code.symbol_size(scale=scale, border=4)
    return str(code.svg_data_uri(scale=scale, border=4, dark="#000", light="#fff")), int(width)


def group_secret(secret: str) -> str:
    """`ABCD EFGH ...`: easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def audit(
    session: AsyncSession, event: str, pid: str | None, client_id: str | None, **detail: Any
) -> None:
    """A row in the identity part's audit trail (never the password or the code)."""
    session.add(
        AuditEvent(
            at=now(),
            event=event,
            pid=pid,
            client_id=client_id,
            detail={"method": METHOD, **detail},
        )
    )
