"""Attachments: files checked before they are kept, then stored with a draft, its
submission or an agency's message.

An upload is judged by its bytes, never by the name or the content type the browser
sent: a renamed program called `x.pdf` is not a PDF. Every file is virus-scanned before
it is stored, and a scanner that cannot be reached refuses the file (fail closed)
rather than letting it through unscanned. HTTP stays out of this module.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal.definition import Attachments
from felles.portal.models import Attachment, Draft, ScanStatus
from felles.portal.scanning import (
    ClamdScanner,
    EicarScanner,
    Scanner,
    ScannerUnavailable,
    scanner_from_settings,
)
from felles.web.i18n import translations
from felles.web.observability import log

__all__ = [
    "AttachmentRecord",
    "AttachmentRefused",
    "ClamdScanner",
    "EicarScanner",
    "NotFound",
    "RefusalReason",
    "Scanner",
    "ScannerUnavailable",
    "Upload",
    "add_to_draft",
    "add_to_message",
    "check_and_scan",
    "check_upload",
    "content",
    "content_disposition",
    "list_for_draft",
    "list_for_message",
    "list_for_submission",
    "move_to_submission",
    "refusal_message",
    "remove_from_draft",
    "scan",
    "scanner_from_settings",
]

MAX_NAME = 200
MAX_EXTENSION = 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def N_(message: str) -> str:
    """Marks a string for translation; translated when shown."""
    return message


class RefusalReason(StrEnum):
    too_large = "too_large"
    too_many = "too_many"
    type_not_allowed = "type_not_allowed"
    empty = "empty"
    infected = "infected"
    bad_name = "bad_name"
    scan_failed = "scan_failed"


# What the person reads for each refusal (English source; %(size)s, %(count)s and
# %(types)s come from the service's rules).
MESSAGES: dict[RefusalReason, str] = {
    RefusalReason.too_large: N_("The file is larger than %(size)s. Choose a smaller file."),
    RefusalReason.too_many: N_(
        "You can add at most %(count)s files. Remove one before you add another."
    ),
    RefusalReason.type_not_allowed: N_(
        "The file must be %(types)s. Choose a file of that type, or save it as one."
    ),
    RefusalReason.empty: N_("The file is empty. Choose a file with content."),
    RefusalReason.infected: N_(
        "The file contains a virus or other harmful content. It was not added."
    ),
    RefusalReason.bad_name: N_("The file name cannot be used. Rename the file and try again."),
    RefusalReason.scan_failed: N_(
        "We could not check the file for viruses just now. Try again in a few minutes."
    ),
}
TYPE_NAMES: dict[str, str] = {
    "application/pdf": "PDF",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "text/plain": N_("text"),
    "text/csv": "CSV",
}


class AttachmentRefused(ValueError):
    """An upload that is not kept, and why (`message(lang)` says it to the person)."""

    def __init__(self, reason: RefusalReason, rules: Attachments | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.rules = rules

    def message(self, lang: str) -> str:
        return refusal_message(self.reason, self.rules, lang)


class NotFound(LookupError):
    """No such attachment (or draft) here: also when it belongs to another draft."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file that passed the checks: what it is decided from its bytes."""

    filename: str
    content_type: str
    size: int
    sha256: str
    # `clean` once a scanner said so; `pending` when no scanner is configured.
    scan_status: ScanStatus = ScanStatus.pending


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    scan_status: str
    created_at: datetime


def format_size(size: int, lang: str) -> str:
    """A byte count as people say it (decimal units, as rules are written: 5 MB)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            number = f"{size / scale:.1f}".removesuffix(".0")
            return f"{number.replace('.', ',') if lang != 'en' else number} {unit}"
    return f"{size} B"


def _or_list(items: list[str], lang: str) -> str:
    if len(items) < 2:
        return "".join(items)
    word = translations(lang).gettext("or")
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def refusal_message(reason: RefusalReason, rules: Attachments | None, lang: str) -> str:
    """The plain-language refusal in the person's language, with the rule's numbers."""
    gettext = translations(lang).gettext
    types = [gettext(TYPE_NAMES.get(t, t)) for t in (rules.types if rules else [])]
    values = {
        "size": format_size(rules.max_bytes if rules else 0, lang),
        "count": rules.max_count if rules else 0,
        "types": _or_list(types, lang),
    }
    return gettext(MESSAGES[reason]) % values


def safe_filename(raw: str) -> str | None:
    """The name without any path, control or direction characters, at most MAX_NAME
    characters with the extension kept; None if nothing usable is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: control characters; Cf: invisible formatting such as the right-to-left
    # override that makes `gpj.exe` look like `exe.jpg`.
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf"))
    name = name.strip().lstrip(".").strip()
    if not name or name in (".", ".."):
        return None
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    stem = stem[: MAX_NAME - len(suffix)].rstrip()
    return f"{stem}{suffix}" if stem else None


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact one (RFC 6266, RFC 8187),
    for every download of a stored file."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename).strip() or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def sniff(content: bytes, filename: str) -> str | None:
    """The content type the bytes show, or None when they are none we accept."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(PNG_SIGNATURE):
        return "image/png"
    if b"\x00" in content:
        return None
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/csv" if filename.lower().endswith(".csv") else "text/plain"


def check_upload(filename: str, content: bytes, rules: Attachments, already: int) -> Upload:
    """The upload if the rules allow it (`already`: files the draft has), else
    AttachmentRefused. Virus scanning is separate (`scan`): it is I/O."""
    if already >= rules.max_count:
        raise AttachmentRefused(RefusalReason.too_many, rules)
    name = safe_filename(filename)
    if name is None:
        raise AttachmentRefused(RefusalReason.bad_name, rules)
    if not content:
        raise AttachmentRefused(RefusalReason.empty, rules)
    if len(content) > rules.max_bytes:
        raise AttachmentRefused(RefusalReason.too_large, rules)
    kind = sniff(content, name)
    if kind is None or kind not in rules.types:
        raise AttachmentRefused(RefusalReason.type_not_allowed, rules)
    return Upload(name, kind, len(content), hashlib.sha256(content).hexdigest())


async def scan(upload: Upload, content: bytes, scanner: Scanner | None) -> Upload:
    """The upload marked clean, or AttachmentRefused (`infected`, or `scan_failed` when
    the scanner cannot answer: fail closed). Without a scanner it stays `pending`."""
    if scanner is None:
        return upload
    try:
        clean = await scanner.scan(content)
    except ScannerUnavailable as exc:
        log.warning("virus_scan_failed", scanner=type(scanner).__name__, error=str(exc))
        raise AttachmentRefused(RefusalReason.scan_failed) from exc
    if not clean:
        log.info("virus_found", scanner=type(scanner).__name__, sha256=upload.sha256)
        raise AttachmentRefused(RefusalReason.infected)
    return replace(upload, scan_status=ScanStatus.clean)


async def check_and_scan(
    filename: str, content: bytes, rules: Attachments, already: int, scanner: Scanner | None
) -> Upload:
    """`check_upload`, then `scan`: what a page or API does with a posted file."""
    return await scan(check_upload(filename, content, rules, already), content, scanner)


# --- Storing -----------------------------------------------------------------------------


def _record(row: Attachment) -> AttachmentRecord:
    return AttachmentRecord(
        row.id, row.filename, row.content_type, row.size, row.sha256, row.scan_status,
        row.created_at,
    )  # fmt: skip


def _new_row(upload: Upload, content: bytes, **owner: str) -> Attachment:
    if len(content) != upload.size or hashlib.sha256(content).hexdigest() != upload.sha256:
        raise ValueError("the content is not the content that was checked")
    return Attachment(
        id=secrets.token_hex(16),
        filename=upload.filename,
        content_type=upload.content_type,
        size=upload.size,
        sha256=upload.sha256,
        content=content,
        scan_status=upload.scan_status.value,
        created_at=datetime.now(UTC),
        **owner,
    )


async def add_to_draft(
    session: AsyncSession, draft_id: str, upload: Upload, content: bytes
) -> AttachmentRecord:
    """Keep a checked upload with a draft that has not been submitted."""
    draft = await session.get(Draft, draft_id)
    if draft is None or draft.submitted_at is not None:
        raise NotFound("No draft to add the file to")
    row = _new_row(upload, content, draft_id=draft_id)
    session.add(row)
    await session.flush()
    return _record(row)


async def add_to_message(
    session: AsyncSession, message_id: str, upload: Upload, content: bytes
) -> AttachmentRecord:
    """Keep a checked upload with an agency's message (the message is the caller's)."""
    row = _new_row(upload, content, message_id=message_id)
    session.add(row)
    await session.flush()
    return _record(row)


async def _listed(session: AsyncSession, where: ColumnElement[bool]) -> list[AttachmentRecord]:
    rows = await session.scalars(
        select(Attachment).where(where).order_by(Attachment.created_at, Attachment.id)
    )
    return [_record(row) for row in rows]


async def list_for_draft(session: AsyncSession, draft_id: str) -> list[AttachmentRecord]:
    return await _listed(session, Attachment.draft_id == draft_id)


async def list_for_submission(session: AsyncSession, submission_id: str) -> list[AttachmentRecord]:
    return await _listed(session, Attachment.submission_id == submission_id)


async def files_of_submissions(
    session: AsyncSession, submission_ids: list[str]
) -> dict[str, list[AttachmentRecord]]:
    """The files of many submissions at once (for the receipt worker's batches)."""
    if not submission_ids:
        return {}
    rows = await session.scalars(
        select(Attachment)
        .where(Attachment.submission_id.in_(submission_ids))
        .order_by(Attachment.created_at, Attachment.id)
    )
    found: dict[str, list[AttachmentRecord]] = {}
    for row in rows:
        found.setdefault(str(row.submission_id), []).append(_record(row))
    return found


async def list_for_message(session: AsyncSession, message_id: str) -> list[AttachmentRecord]:
    return await _listed(session, Attachment.message_id == message_id)


async def remove_from_draft(session: AsyncSession, draft_id: str, attachment_id: str) -> None:
    """Delete a draft's file; another draft's file is NotFound, as if it did not exist."""
    row = await session.get(Attachment, attachment_id)
    if row is None or row.draft_id != draft_id:
        raise NotFound("No such file in this draft")
    await session.delete(row)
    await session.flush()


async def move_to_submission(session: AsyncSession, draft_id: str, submission_id: str) -> int:
    """Hand a draft's files to its submission (they can no longer be removed); how many."""
    result = await session.execute(
        update(Attachment)
        .where(Attachment.draft_id == draft_id)
        .values(submission_id=submission_id, draft_id=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def content(session: AsyncSession, attachment_id: str) -> bytes:
    """The stored bytes (whoever asks must already be allowed to see the file)."""
    found = await session.scalar(select(Attachment.content).where(Attachment.id == attachment_id))
    if found is None:
        raise NotFound("No such file")
    return bytes(found)
