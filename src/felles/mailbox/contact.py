"""The contact and reservation register as the person it is about sees it (like KRR's
"minprofil"): checking a new e-mail address or mobile number, a one-time code to prove
it is theirs, when to ask "are these still right?", what may be removed, and a digital
mailbox address for the provider they choose. No HTTP here: `contact_pages.py` sits on
top, and every change goes through `felles.registry.service` with `changed_by="self"`.

One-time codes are never stored: the page seals a `PendingChange` (the new value and an
HMAC of the code with it) into a cookie only Felles can open. Attempts and sends are
counted by the shared rate limiter (`felles.identity.ratelimit`, Redis or the
database), not in that cookie, so sending an old cookie again does not give more tries.
Codes, addresses and numbers are never logged in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from felles.config import Settings
from felles.db import Database
from felles.identity.crypto import master_key
from felles.identity.ratelimit import RateLimiter, rate_limiter
from felles.notifications.service import Notifier, mask_email, mask_phone
from felles.registry import service as registry
from felles.registry.schemas import ContactChangeRecord, ContactRecord

# Ask the person to confirm their details when they last did this long ago (or never).
CONFIRM_EVERY = timedelta(days=365)
CODE_DIGITS = 6
CODE_SECONDS = 15 * 60  # a code is valid this long
MAX_ATTEMPTS = 5  # tries at one code; then a new code is needed
SENDS, SEND_WINDOW = 5, 60 * 60  # codes sent per person an hour (SMS costs; no spamming others)
CHANGED_BY = "self"
# The portal reads the person's own entry to show it to them; recorded like any lookup.
ACCESS = registry.Access(accessed_by="felles-portal", purpose="contact details")
# The alphabet of mailbox address codes, as the demo data uses (felles.demo.generate).
MAILBOX_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
NORWAY = ZoneInfo("Europe/Oslo")
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "ł": "l", "ß": "ss", "đ": "d"})


def N_(message: str) -> str:
    """Marks a string for extraction; translated where it is shown or sent."""
    return message


class Kind(StrEnum):
    """The contact details a person proves with a code."""

    email = "email"
    mobile = "mobile"


class InvalidContact(ValueError):
    """A typed e-mail address or mobile number that cannot be used; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- Checking what people type ----------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_TOP_LEVEL = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_SEPARATORS = re.compile(r"[\s.\-()/]")


def normalise_email(raw: str) -> str:
    """An e-mail address as typed, checked (`name@example.no`, also `@æøå.no` domains)
    and with its domain in lower case; raises InvalidContact("missing" or "format")."""
    value = raw.strip()
    if not value:
        raise InvalidContact("missing")
    if len(value) > 254 or value.count("@") != 1 or any(c.isspace() for c in value):
        raise InvalidContact("format")
    local, domain = value.split("@")
    domain = domain.lower()
    if not local or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        raise InvalidContact("format")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidContact("format") from None
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or not _TOP_LEVEL.fullmatch(labels[-1])
    ):
        raise InvalidContact("format")
    return f"{local}@{domain}"


def normalise_mobile(raw: str) -> str:
    """A mobile number as the register keeps it: `+47 91234567` for a Norwegian one (8
    digits starting with 4 or 9, typed with or without +47), `+<country code><number>`
    for a foreign one (typed with + or 00, at most 15 digits in all). Raises
    InvalidContact("missing", "format", "not_mobile" or "foreign")."""
    value = _SEPARATORS.sub("", raw.strip())
    if not value:
        raise InvalidContact("missing")
    if value.startswith("00"):
        value = "+" + value[2:]
    international = value.startswith("+")
    digits = value.removeprefix("+")
    if not digits or not digits.isascii() or not digits.isdigit():
        raise InvalidContact("format")
    if international and not digits.startswith("47"):
        if len(digits) < 8 or len(digits) > 15 or digits[0] == "0":
            raise InvalidContact("foreign")
        return "+" + digits
    national = digits[2:] if international else digits
    if len(national) != 8:
        raise InvalidContact("format")
    if national[0] not in "49":
        raise InvalidContact("not_mobile")
    return "+47 " + national


def normalise(kind: Kind, raw: str) -> str:
    return normalise_email(raw) if kind is Kind.email else normalise_mobile(raw)


def mask(kind: Kind | str, value: str) -> str:
    """For logs and history: enough to recognise, too little to harvest."""
    return mask_email(value) if kind == Kind.email else mask_phone(value)


def clean_code(raw: str) -> str | None:
    """The typed code without spaces, or None if it is not 6 digits."""
    code = "".join(raw.split())
    return code if len(code) == CODE_DIGITS and code.isascii() and code.isdigit() else None


# --- What the page asks and allows -----------------------------------------------------


def today() -> date:
    """Today in Norway (dates in the register are Norwegian dates)."""
    return datetime.now(NORWAY).date()


def needs_confirming(contact: ContactRecord | None, on: date) -> bool:
    """Ask "are these still right?" when the person has details to confirm and last
    confirmed them `CONFIRM_EVERY` ago or longer (or never)."""
    if contact is None or not (contact.email or contact.mobile):
        return False
    return contact.last_confirmed_on is None or contact.last_confirmed_on + CONFIRM_EVERY <= on


def removal_refused(contact: ContactRecord | None, kind: Kind) -> str | None:
    """Why this detail may not be removed now, or None. "nothing": there is none to
    remove. "needed_for_mailbox": it is the last way to tell the person that a letter has
    arrived in their digital mailbox (they can give up the mailbox first)."""
    if contact is None or getattr(contact, kind.value) is None:
        return "nothing"
    other = contact.mobile if kind is Kind.email else contact.email
    if other is None and contact.mailbox_provider:
        return "needed_for_mailbox"
    return None


def mailbox_refused(contact: ContactRecord | None, provider: str | None) -> str | None:
    """A digital mailbox needs an e-mail address or a mobile number, to say when a
    letter has arrived: "no_contact" without either."""
    if provider and not (contact and (contact.email or contact.mobile)):
        return "no_contact"
    return None


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c == "-"))


def local_part(given_name: str, family_name: str) -> str:
    """`kari.nordmann`, as the demo data names mailbox addresses."""
    given = given_name.split()[0] if given_name.split() else ""
    name = f"{_ascii(given)[:40]}.{_ascii(family_name.replace(' ', ''))[:40]}"
    return name.strip(".") or "person"


# --- History ------------------------------------------------------------------------------

HIDDEN_FIELDS = {"reserved_on"}  # said by the reservation's own line


@dataclass(frozen=True, slots=True)
class HistoryLine:
    field: str
    old: str | None  # masked where it is an address or a number
    new: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Changes made together: at the same moment, by the same one."""

    changed_at: datetime
    changed_by: str
    lines: tuple[HistoryLine, ...]


def mask_address(value: str) -> str:
    """A mailbox address: the first letter and the last three characters."""
    return f"{value[:1]}***{value[-3:]}" if len(value) > 6 else "***"


def shown(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if field == "email":
        return mask_email(value)
    if field == "mobile":
        return mask_phone(value)
    if field == "mailbox_address":
        return mask_address(value)
    return value


def history_entries(changes: list[ContactChangeRecord]) -> list[HistoryEntry]:
    """The register's change rows (oldest first) as entries, newest first, with e-mail
    addresses, numbers and mailbox addresses masked."""
    entries: list[HistoryEntry] = []
    for change in reversed(changes):
        if change.field in HIDDEN_FIELDS:
            continue
        line = HistoryLine(
            change.field,
            shown(change.field, change.old_value),
            shown(change.field, change.new_value),
        )
        last = entries[-1] if entries else None
        if last and last.changed_at == change.changed_at and last.changed_by == change.changed_by:
            entries[-1] = HistoryEntry(last.changed_at, last.changed_by, (line, *last.lines))
        else:
            entries.append(HistoryEntry(change.changed_at, change.changed_by, (line,)))
    return entries


# --- One-time codes -----------------------------------------------------------------------

EMAIL_SUBJECT = N_("Your code to confirm your e-mail address")
EMAIL_TEXT = N_(
    "%(code)s is your code to confirm this e-mail address for the contact register in "
    "Felles. It is valid for %(minutes)s minutes.\n\n"
    "If you did not ask for a code, you can ignore this e-mail. Nothing is changed "
    "without the code."
)
SMS_TEXT = N_(
    "%(code)s is your code to confirm this mobile number for the contact register in "
    "Felles. It is valid for %(minutes)s minutes."
)


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A new e-mail address or mobile number waiting for its code (sealed in a cookie)."""

    id: str  # names the code in the attempt counter
    pid: str
    kind: str
    value: str
    mac: str  # HMAC of the code with everything above
    expires_at: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> PendingChange | None:
        if not value or set(value) != {f.name for f in fields(cls)}:
            return None
        if not isinstance(value["expires_at"], int) or value["kind"] not in set(Kind):
            return None
        if not all(isinstance(value[k], str) for k in ("id", "pid", "kind", "value", "mac")):
            return None
        return cls(**value)

    @property
    def masked(self) -> str:
        return mask(self.kind, self.value)


class CodeResult(StrEnum):
    right = "right"
    wrong = "wrong"  # attempts_left more tries
    locked = "locked"  # too many tries: a new code is needed
    expired = "expired"
    used = "used"  # already used to save the change


@dataclass(frozen=True, slots=True)
class Checked:
    result: CodeResult
    attempts_left: int = 0


class ContactCodes:
    """One per app process: the codes' key (from the master key), the shared rate
    limiter and the notifier."""

    def __init__(
        self,
        key: bytes,
        limiter: RateLimiter,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.limiter = limiter
        self.notifier = notifier
        self.clock = clock

    @classmethod
    def create(
        cls, settings: Settings, db: Database, limiter: RateLimiter | None = None
    ) -> ContactCodes:
        key = hmac.new(master_key(settings), b"felles contact register", hashlib.sha256).digest()
        return cls(key, limiter or rate_limiter(settings, db), Notifier.from_settings(settings))

    def _derive(self, *parts: str) -> bytes:
        return hmac.new(self._key, "|".join(parts).encode(), hashlib.sha256).digest()

    def _account(self, pid: str) -> str:
        """A stand-in for the identity number in counter keys (keyed, not reversible)."""
        return self._derive("account", pid).hex()[:40]

    def _mac(self, id: str, pid: str, kind: str, value: str, code: str) -> str:
        return self._derive("code", id, pid, kind, value, code).hex()

    async def issue(self, pid: str, kind: Kind, value: str) -> tuple[PendingChange, str] | int:
        """A new code for this change: (the pending change, the code to send), or the
        seconds to wait when the person has asked for too many codes lately."""
        decision = await self.limiter.hit(f"contact-send:{self._account(pid)}", SENDS, SEND_WINDOW)
        if not decision.allowed:
            return decision.retry_after
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        id = secrets.token_urlsafe(16)
        mac = self._mac(id, pid, kind.value, value, code)
        expires_at = int(self.clock()) + CODE_SECONDS
        return PendingChange(id, pid, kind.value, value, mac, expires_at), code

    async def send(self, pending: PendingChange, code: str, gettext: Callable[[str], str]) -> None:
        """Send the code to the NEW address or number (raises NotificationError or
        ValueError if it could not be handed over)."""
        values = {"code": code, "minutes": CODE_SECONDS // 60}
        if pending.kind == Kind.email:
            await self.notifier.send_email(
                pending.value, gettext(EMAIL_SUBJECT), gettext(EMAIL_TEXT) % values + "\n"
            )
        else:
            await self.notifier.send_sms(pending.value, gettext(SMS_TEXT) % values)

    async def check(self, pending: PendingChange, code: str) -> Checked:
        """One try at the code. Every try is counted (atomically, before comparing) under
        the code's id, so at most `MAX_ATTEMPTS` tries are ever compared."""
        if self.clock() >= pending.expires_at:
            return Checked(CodeResult.expired)
        used = f"contact-used:{pending.id}"
        if not (await self.limiter.peek(used, 1, CODE_SECONDS)).allowed:
            return Checked(CodeResult.used)
        attempt = await self.limiter.hit(f"contact-code:{pending.id}", MAX_ATTEMPTS, CODE_SECONDS)
        if not attempt.allowed:
            return Checked(CodeResult.locked)
        expected = self._mac(pending.id, pending.pid, pending.kind, pending.value, code)
        if hmac.compare_digest(expected, pending.mac):
            await self.limiter.hit(used, 1, CODE_SECONDS)
            return Checked(CodeResult.right)
        left = MAX_ATTEMPTS - attempt.count
        return Checked(CodeResult.wrong if left > 0 else CodeResult.locked, left)

    def mailbox_address(self, pid: str, given_name: str, family_name: str, provider: str) -> str:
        """A stable address for this person at this provider, following the demo data's
        convention: `kari.nordmann#K7QX` (Felles, Digipost) or `EB` and 10 digits
        (e-Boks); the code is derived from the person's number under Felles' key."""
        digest = self._derive("mailbox", provider, pid)
        if provider == "eboks":
            return f"EB{int.from_bytes(digest[:8], 'big') % 10**10:010d}"
        code = "".join(MAILBOX_CHARS[b % len(MAILBOX_CHARS)] for b in digest[:4])
        return f"{local_part(given_name, family_name)}#{code}"
