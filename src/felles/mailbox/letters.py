"""Letters: what a sender may send, which way each goes, and sealing it for the provider.

A letter goes `digital` to the recipient's mailbox provider when the person has one and
has not reserved themselves; otherwise, if the sender allows it, to `print` (an address
page and the documents, posted by the print provider); otherwise `none`, with the reason.
Whichever way it goes, the documents are encrypted (CMS EnvelopedData) before anything is
stored, for the mailbox provider or for Felles' print queue (whose package also carries
the postal address): Felles' sending side keeps no readable letter. The print-ready PDF
(address page first) is made from the package only when the print provider fetches it.

Everything here is plain data and CPU work, no database: `sending.py` and `batches.py`
store what it makes, and `seal` runs in worker processes for bulk mailings.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import uuid
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from cryptography import x509
from pypdf import PdfReader

from felles.identity import levels
from felles.mailbox import cms
from felles.mailbox.print_pdf import PostalAddress, print_ready
from felles.mailbox.providers import PRINT_PROVIDER

MAX_LETTER_BYTES = 10 * 1024 * 1024  # all documents of one letter together
MAX_ATTACHMENTS = 20
MAX_TITLE = 200
MAX_NAME = 100
MAX_REPEAT_DAYS = 60
MAX_VISIBLE_AHEAD = timedelta(days=366)  # a letter may be held back up to a year
SENSITIVITY_LEVELS = {"normal": levels.SUBSTANTIAL, "sensitive": levels.HIGH}
DOCUMENT_TYPES = {"application/pdf"}


class Channel(StrEnum):
    digital = "digital"
    print = "print"
    none = "none"


class Status(StrEnum):
    accepted = "accepted"  # stored; a batch's letters wait here for the batch's commit
    delivered = "delivered"  # in the mailbox, or in the print queue
    notified = "notified"  # the person was told (e-mail or SMS)
    opened = "opened"  # the person opened it
    printed = "printed"  # the print provider confirmed printing and posting it
    failed = "failed"  # could not be delivered (see the reason)


class Reason(StrEnum):
    reserved = "reserved"  # said no to digital mail
    no_mailbox = "no_mailbox"  # in the register, but chose no digital mailbox
    not_registered = "not_registered"  # not in the contact register
    certificate_expired = "certificate_expired"  # the provider's certificate is unusable
    deceased = "deceased"
    no_address = "no_address"  # would go to print, but the register has no address


class LetterRefused(ValueError):
    """A letter that cannot be accepted as given; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    content: bytes
    media_type: str = "application/pdf"


@dataclass(frozen=True, slots=True)
class LetterIn:
    """A letter as the sender gives it (the recipient's number already checked)."""

    recipient: str
    title: str
    main: Document
    attachments: tuple[Document, ...] = ()
    sender_ref: str | None = None
    sensitivity: str = "normal"
    notify: bool = True
    repeat_after_days: int | None = 7
    print_allowed: bool = True
    visible_from: datetime | None = None

    @property
    def documents(self) -> tuple[Document, ...]:
        return (self.main, *self.attachments)

    @property
    def level(self) -> str:
        return SENSITIVITY_LEVELS[self.sensitivity]


def is_pdf(content: bytes) -> bool:
    """A PDF starts with its header and ends with its end-of-file marker: a cheap check
    that catches a Word file or an image sent as "PDF" without parsing the whole thing."""
    return content.startswith(b"%PDF-") and b"%%EOF" in content[-1024:]


def check(letter: LetterIn) -> None:
    """Refuse what cannot be sent, naming the field (the first problem found)."""
    if not letter.title.strip() or len(letter.title) > MAX_TITLE:
        raise LetterRefused("title", f"The title must be 1 to {MAX_TITLE} characters")
    if letter.sensitivity not in SENSITIVITY_LEVELS:
        raise LetterRefused("sensitivity", "Sensitivity must be `normal` or `sensitive`")
    if letter.repeat_after_days is not None and not (
        1 <= letter.repeat_after_days <= MAX_REPEAT_DAYS
    ):
        raise LetterRefused(
            "repeat_after_days", f"A reminder comes after 1 to {MAX_REPEAT_DAYS} days"
        )
    if letter.visible_from is not None and (
        letter.visible_from.tzinfo is None
        or letter.visible_from > datetime.now(UTC) + MAX_VISIBLE_AHEAD
    ):
        raise LetterRefused("visible_from", "A time with its time zone, at most a year from now")
    if len(letter.attachments) > MAX_ATTACHMENTS:
        raise LetterRefused("attachments", f"At most {MAX_ATTACHMENTS} attachments")
    total = 0
    for index, document in enumerate(letter.documents):
        where = "document" if index == 0 else f"attachments[{index - 1}]"
        if not document.name.strip() or len(document.name) > MAX_NAME or "/" in document.name:
            raise LetterRefused(
                f"{where}.name", f"A file name is 1 to {MAX_NAME} characters without '/'"
            )
        if document.media_type not in DOCUMENT_TYPES:
            raise LetterRefused(f"{where}.type", "Documents must be PDF (application/pdf)")
        if not is_pdf(document.content):
            raise LetterRefused(f"{where}.content", f"{document.name} is not a PDF file")
        total += len(document.content)
    if total > MAX_LETTER_BYTES:
        raise LetterRefused(
            "document", f"A letter's documents may be at most {MAX_LETTER_BYTES // 2**20} MB"
        )


@dataclass(frozen=True, slots=True)
class Reach:
    """What the registers say about how to reach one person."""

    pid: str
    name: str
    deceased: bool
    registered: bool  # in the contact register
    reserved: bool
    provider: str | None
    mailbox_address: str | None
    email: str | None
    mobile: str | None
    language: str
    postal: PostalAddress | None


@dataclass(frozen=True, slots=True)
class Route:
    channel: Channel
    reason: Reason | None = None
    provider: str | None = None
    mailbox_address: str | None = None

    @property
    def status(self) -> Status:
        return Status.failed if self.channel is Channel.none else Status.delivered


def route(reach: Reach, print_allowed: bool, usable: Mapping[str, bool]) -> Route:
    """Which way a letter goes. `usable` says which providers' certificates can be
    encrypted to now (an expired one cannot)."""
    if reach.deceased:
        return Route(Channel.none, Reason.deceased)
    reason: Reason
    if not reach.registered:
        reason = Reason.not_registered
    elif reach.reserved:
        reason = Reason.reserved
    elif not (reach.provider and reach.mailbox_address):
        reason = Reason.no_mailbox
    elif not usable.get(reach.provider, False):
        reason = Reason.certificate_expired
    else:
        return Route(Channel.digital, None, reach.provider, reach.mailbox_address)
    if not print_allowed:
        return Route(Channel.none, reason)
    if reach.postal is None:
        return Route(Channel.none, Reason.no_address)
    if not usable.get(PRINT_PROVIDER, False):  # nobody can post it now: that is why
        return Route(Channel.none, Reason.certificate_expired)
    return Route(Channel.print, reason, PRINT_PROVIDER)


def new_id() -> str:
    """A UUID whose first bits are the time (as UUIDv7): new rows go to the end of the
    primary key's index instead of anywhere in it."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def package(
    letter: LetterIn, letter_id: str, sender: str, postal: PostalAddress | None = None
) -> bytes:
    """The documents and a manifest in one ZIP (stored, not compressed: PDFs are). A
    letter to print carries the postal address in its manifest, encrypted with it."""
    manifest: dict[str, object] = {
        "id": letter_id,
        "sender": sender,
        "title": letter.title,
        "reference": letter.sender_ref or letter_id,
        "documents": [
            {"name": d.name, "type": d.media_type, "main": i == 0}
            for i, d in enumerate(letter.documents)
        ],
    }
    if postal is not None:
        manifest["address"] = asdict(postal)
    entries = [("manifest.json", json.dumps(manifest, ensure_ascii=False).encode())]
    entries += [(f"{i:02d}-{d.name}", d.content) for i, d in enumerate(letter.documents)]
    return stored_zip(entries)


# ZIP records (APPNOTE 6.3.10, 4.3.7, 4.3.12 and 4.3.16): version 2.0 needed, names in
# UTF-8 (flag bit 11), stored (method 0), dated 1980-01-01 00:00 (DOS time 0, date 0x21).
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_UTF8, _DOS_DATE = 0x0800, 0x21


def stored_zip(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A ZIP archive of (name, data) entries, stored. Written here in one go, not with
    `zipfile`: its per-entry bookkeeping cost half of sealing a letter, more than the
    RSA and AES together. `zipfile` reads it (`unpack`), and the tests check it."""
    parts: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, data in entries:
        encoded = name.encode()
        crc, size = zlib.crc32(data), len(data)
        local = _LOCAL.pack(
            0x04034B50, 20, _UTF8, 0, 0, _DOS_DATE, crc, size, size, len(encoded), 0
        )
        header = _CENTRAL.pack(
            0x02014B50, 20, 20, _UTF8, 0, 0, _DOS_DATE, crc, size, size,
            len(encoded), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central.append(header + encoded)
        parts += (local, encoded, data)
        offset += len(local) + len(encoded) + size
    directory = b"".join(central)
    end = _END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)
    return b"".join((*parts, directory, end))


@dataclass(frozen=True, slots=True)
class Opened:
    """A letter's package, unpacked by its provider."""

    title: str
    sender: str
    reference: str
    documents: list[Document] = field(default_factory=list)
    address: PostalAddress | None = None


def unpack(package_bytes: bytes) -> Opened:
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = sorted(n for n in archive.namelist() if n != "manifest.json")
        documents = [
            Document(entry["name"], archive.read(stored), entry["type"])
            for entry, stored in zip(manifest["documents"], names, strict=True)
        ]
    address = manifest.get("address")
    return Opened(
        manifest["title"],
        manifest["sender"],
        manifest.get("reference", manifest["id"]),
        documents,
        PostalAddress(**address) if address else None,
    )


def print_document(opened: Opened) -> bytes:
    """The print-ready PDF of a letter to print: its address page, then its documents.
    Made when the print provider fetches it (CPU work kept off the sending path)."""
    if opened.address is None:
        raise ValueError("This letter is not one to print")
    return print_ready(
        opened.address,
        opened.sender,
        opened.title,
        opened.reference,
        [d.content for d in opened.documents],
    )


@lru_cache(maxsize=16)
def _recipient(certificate_pem: str) -> cms.Recipient:
    return cms.Recipient(x509.load_pem_x509_certificate(certificate_pem.encode()))


def recipient_for(certificate_pem: str) -> cms.Recipient:
    """A provider's certificate, checked (expiry included) and pre-encoded once per
    process; raises `cms.CertificateRefused` if it cannot be encrypted to."""
    recipient = _recipient(certificate_pem)
    now = time.time()
    certificate = recipient.certificate
    if not (
        certificate.not_valid_before_utc.timestamp() <= now
        and now <= certificate.not_valid_after_utc.timestamp()
    ):
        raise cms.CertificateRefused("The provider's certificate is not valid now")
    return recipient


def usable_providers(certificates: Mapping[str, str]) -> dict[str, bool]:
    """Which providers' certificates can be encrypted to now."""
    usable = {}
    for name, pem in certificates.items():
        try:
            recipient_for(pem)
            usable[name] = True
        except (cms.CertificateRefused, ValueError):
            usable[name] = False
    return usable


def check_printable(letter: LetterIn) -> None:
    """Refuse a letter for print whose documents cannot be read as PDFs: `is_pdf` looks
    only at a file's ends, and printing takes every page of every document."""
    for index, document in enumerate(letter.documents):
        try:
            len(PdfReader(io.BytesIO(document.content)).pages)
        except Exception:  # a broken file makes pypdf raise all kinds of errors
            where = "document" if index == 0 else f"attachments[{index - 1}]"
            raise LetterRefused(
                f"{where}.content", f"{document.name} cannot be read as a PDF to print"
            ) from None


def seal(
    letter: LetterIn,
    letter_id: str,
    chosen: Route,
    reach: Reach,
    sender: str,
    certificates: Mapping[str, str],
) -> bytes | None:
    """The letter as CMS EnvelopedData for whoever delivers it (None if nobody does):
    the mailbox provider, or the print queue (with the postal address inside)."""
    if chosen.channel is Channel.none or chosen.provider is None:
        return None
    recipient = recipient_for(certificates[chosen.provider])
    postal = None
    if chosen.channel is Channel.print:
        check_printable(letter)
        postal = reach.postal
    return cms.encrypt(package(letter, letter_id, sender, postal), recipient)


def documents_meta(letter: LetterIn) -> list[dict[str, object]]:
    """What the letter row says of its documents (names and sizes, no content)."""
    return [
        {"name": d.name, "type": d.media_type, "size": len(d.content), "main": i == 0}
        for i, d in enumerate(letter.documents)
    ]


def sealed_many(
    items: Sequence[tuple[LetterIn, str, Route, Reach]],
    sender: str,
    certificates: Mapping[str, str],
) -> list[bytes | LetterRefused | None]:
    """`seal` for a chunk of letters: what a worker process runs for bulk mailings. A
    letter that cannot be sealed gives its refusal in its place, so one bad letter
    does not stop the chunk."""
    sealed: list[bytes | LetterRefused | None] = []
    for letter, letter_id, chosen, reach in items:
        try:
            sealed.append(seal(letter, letter_id, chosen, reach, sender, certificates))
        except LetterRefused as refused:
            sealed.append(refused)
    return sealed
