"""Uploads are judged by their bytes, scanned, and kept with the right draft only."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator

import pytest

from felles.config import Settings
from felles.db import Database
from felles.portal import attachments
from felles.portal.attachments import (
    AttachmentRefused,
    ClamdScanner,
    EicarScanner,
    RefusalReason,
    check_and_scan,
    check_upload,
    refusal_message,
    safe_filename,
)
from felles.portal.definition import Attachments
from felles.portal.models import ScanStatus
from felles.portal.scanning import EICAR, scanner_from_setting, scanner_from_settings
from tests.portal.factories import make_draft

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(13)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(40)
ONLY_PDF = Attachments(types=["application/pdf"], max_bytes=5_000_000, max_count=3)
ALL_KINDS = Attachments(
    types=["application/pdf", "image/jpeg", "image/png", "text/plain", "text/csv"],
    max_bytes=1000,
    max_count=2,
)


def refused(filename: str, content: bytes, rules: Attachments, already: int = 0) -> RefusalReason:
    with pytest.raises(AttachmentRefused) as caught:
        check_upload(filename, content, rules, already)
    return caught.value.reason


def test_the_type_comes_from_the_bytes() -> None:
    assert check_upload("a.pdf", PDF, ALL_KINDS, 0).content_type == "application/pdf"
    assert check_upload("photo", JPEG, ALL_KINDS, 0).content_type == "image/jpeg"
    assert check_upload("scan.pdf", PNG, ALL_KINDS, 0).content_type == "image/png"
    assert check_upload("notes.txt", "Blåbær\n".encode(), ALL_KINDS, 0).content_type == (
        "text/plain"
    )
    assert check_upload("rows.CSV", b"a;b\n1;2\n", ALL_KINDS, 0).content_type == "text/csv"
    upload = check_upload("a.pdf", PDF, ALL_KINDS, 0)
    assert upload.size == len(PDF) and len(upload.sha256) == 64
    assert upload.scan_status is ScanStatus.pending


def test_every_refusal_reason() -> None:
    assert refused("a.pdf", PDF, ONLY_PDF, already=3) is RefusalReason.too_many
    assert refused("a.pdf", b"", ONLY_PDF) is RefusalReason.empty
    assert refused("a.pdf", b"%PDF-" + bytes(1001), ALL_KINDS) is RefusalReason.too_large
    assert refused("x.pdf", EXE, ONLY_PDF) is RefusalReason.type_not_allowed
    assert refused("scan.pdf", PNG, ONLY_PDF) is RefusalReason.type_not_allowed
    assert refused("text.pdf", b"hello", ONLY_PDF) is RefusalReason.type_not_allowed
    assert refused("bin.txt", b"abc\x00def", ALL_KINDS) is RefusalReason.type_not_allowed
    assert refused("latin1.txt", "blåbær".encode("latin-1"), ALL_KINDS) is (
        RefusalReason.type_not_allowed
    )
    for name in ("", "   ", "../..", "dir/", "\x00\x01", "...", "C:\\temp\\"):
        assert refused(name, PDF, ONLY_PDF) is RefusalReason.bad_name, name


async def test_a_virus_is_refused_and_a_clean_file_marked_clean() -> None:
    scanner = EicarScanner()
    with pytest.raises(AttachmentRefused) as caught:
        await check_and_scan(
            "eicar.txt", EICAR, ALL_KINDS.model_copy(update={"max_bytes": 10_000}), 0, scanner
        )
    assert caught.value.reason is RefusalReason.infected
    clean = await check_and_scan("a.pdf", PDF, ONLY_PDF, 0, scanner)
    assert clean.scan_status is ScanStatus.clean
    unscanned = await check_and_scan("a.pdf", PDF, ONLY_PDF, 0, None)
    assert unscanned.scan_status is ScanStatus.pending


def test_safe_filenames() -> None:
    assert safe_filename("C:\\Users\\kari\\Søknad.pdf") == "Søknad.pdf"
    assert safe_filename("/etc/passwd") == "passwd"
    assert safe_filename("../../secret.pdf") == "secret.pdf"
    assert safe_filename("in\x00voice\r\n.pdf") == "invoice.pdf"
    # The right-to-left override that makes "fdp.exe" read as "exe.pdf".
    assert safe_filename("report\u202efdp.exe") == "reportfdp.exe"
    assert safe_filename(".htaccess") == "htaccess"
    long = safe_filename("a" * 500 + ".pdf")
    assert long is not None and len(long) == 200 and long.endswith("a.pdf")
    assert safe_filename("no-extension") == "no-extension"
    # NFD from macOS becomes NFC.
    assert safe_filename("a\u030a.pdf") == "å.pdf"


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "The file is larger than 5 MB. Choose a smaller file."),
        ("nb", "Filen er større enn 5 MB. Velg en mindre fil."),
        ("nn", "Fila er større enn 5 MB. Vel ei mindre fil."),
    ],
)
def test_messages_carry_the_rules_numbers(lang: str, expected: str) -> None:
    assert refusal_message(RefusalReason.too_large, ONLY_PDF, lang) == expected


@pytest.mark.parametrize("lang", ["nb", "nn", "en"])
def test_every_reason_has_a_message_in_every_language(lang: str) -> None:
    rules = Attachments(types=["application/pdf", "image/png", "text/plain"], max_bytes=2_500_000)
    for reason in RefusalReason:
        text = refusal_message(reason, rules, lang)
        assert text and "%(" not in text
        if lang != "en":
            assert text != refusal_message(reason, rules, "en"), reason
    types = refusal_message(RefusalReason.type_not_allowed, rules, lang)
    assert "PDF, PNG" in types
    assert "2,5 MB" in refusal_message(RefusalReason.too_large, rules, "nb")
    assert (
        AttachmentRefused(RefusalReason.too_many, rules)
        .message("en")
        .startswith("You can add at most 5 files")
    )


# --- ClamAV's daemon, faked: it is outside Felles ---------------------------------------


class FakeClamd:
    """Speaks clamd's INSTREAM: `zINSTREAM\\0`, length-prefixed chunks, a zero chunk,
    then a NUL-terminated verdict."""

    def __init__(self, *, limit: int = 10_000_000) -> None:
        self.limit = limit
        self.received: list[bytes] = []
        self.chunks: list[int] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = await reader.readuntil(b"\0")
        assert command == b"zINSTREAM\0"
        data = bytearray()
        while True:
            (size,) = struct.unpack("!I", await reader.readexactly(4))
            if size == 0:
                break
            self.chunks.append(size)
            data += await reader.readexactly(size)
            if len(data) > self.limit:
                writer.write(b"INSTREAM size limit exceeded. ERROR\0")
                await writer.drain()
                writer.close()
                return
        self.received.append(bytes(data))
        verdict = b"stream: Eicar-Test-Signature FOUND\0" if EICAR in data else b"stream: OK\0"
        writer.write(verdict)
        await writer.drain()
        writer.close()


@pytest.fixture
async def clamd() -> AsyncIterator[tuple[FakeClamd, int]]:
    fake = FakeClamd(limit=200_000)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake, port


async def test_clamd_scanner_speaks_instream(clamd: tuple[FakeClamd, int]) -> None:
    fake, port = clamd
    scanner = ClamdScanner("127.0.0.1", port)
    big = b"%PDF-" + bytes(150_000)
    assert await scanner.scan(big) is True
    assert fake.received[-1] == big and max(fake.chunks) <= 65536 and len(fake.chunks) == 3
    assert await scanner.scan(b"prefix " + EICAR + b" suffix") is False
    rules = Attachments(types=["text/plain"])
    with pytest.raises(AttachmentRefused) as caught:
        await check_and_scan("v.txt", EICAR, rules, 0, scanner)
    assert caught.value.reason is RefusalReason.infected


async def test_clamd_errors_and_outages_refuse_the_file(clamd: tuple[FakeClamd, int]) -> None:
    _, port = clamd
    too_big_for_clamd = b"%PDF-" + bytes(300_000)
    rules = Attachments(types=["application/pdf"])
    with pytest.raises(AttachmentRefused) as caught:
        await check_and_scan("a.pdf", too_big_for_clamd, rules, 0, ClamdScanner("127.0.0.1", port))
    assert caught.value.reason is RefusalReason.scan_failed


async def test_clamd_down_fails_closed() -> None:
    with socket_closed_port() as port:
        scanner = ClamdScanner("127.0.0.1", port, timeout=2)
        with pytest.raises(AttachmentRefused) as caught:
            await check_and_scan("a.pdf", PDF, ONLY_PDF, 0, scanner)
    assert caught.value.reason is RefusalReason.scan_failed
    assert "scan" in caught.value.message("en").lower() or "virus" in caught.value.message("en")


async def test_clamd_that_hangs_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(AttachmentRefused) as caught:
            await check_and_scan(
                "a.pdf", PDF, ONLY_PDF, 0, ClamdScanner("127.0.0.1", port, timeout=0.3)
            )
    assert caught.value.reason is RefusalReason.scan_failed


def socket_closed_port():  # type: ignore[no-untyped-def]
    """A port nobody listens on (bound then closed)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():  # type: ignore[no-untyped-def]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield port

    return closed()


def test_the_setting_chooses_the_scanner(settings: Settings) -> None:
    assert isinstance(scanner_from_settings(settings), EicarScanner)
    assert scanner_from_setting("none") is None
    chosen = scanner_from_setting("clamd://clamav.internal:3310")
    assert isinstance(chosen, ClamdScanner) and (chosen.host, chosen.port) == (
        "clamav.internal",
        3310,
    )
    with pytest.raises(ValueError, match="FELLES_VIRUS_SCANNER"):
        scanner_from_setting("clamd://nohost")
    with pytest.raises(ValueError):
        Settings(virus_scanner="ftp://x")


# --- Stored with a draft, its submission, or a message ------------------------------------


async def test_draft_attachments_stay_with_their_draft(db: Database) -> None:
    mine, other = await make_draft(db), await make_draft(db)
    upload = check_upload("a.pdf", PDF, ONLY_PDF, 0)
    async with db.session() as session:
        first = await attachments.add_to_draft(session, mine, upload, PDF)
        png = check_upload("b.png", PNG, ALL_KINDS, 1)
        second = await attachments.add_to_draft(session, mine, png, PNG)
        theirs = await attachments.add_to_draft(session, other, upload, PDF)
    async with db.session() as session:
        listed = await attachments.list_for_draft(session, mine)
        assert {a.id for a in listed} == {first.id, second.id}
        assert {a.filename for a in listed} == {"a.pdf", "b.png"}
        assert await attachments.content(session, first.id) == PDF
        with pytest.raises(attachments.NotFound):
            await attachments.remove_from_draft(session, mine, theirs.id)
        with pytest.raises(attachments.NotFound):
            await attachments.remove_from_draft(session, mine, "nope")
        await attachments.remove_from_draft(session, mine, second.id)
    async with db.session() as session:
        assert [a.id for a in await attachments.list_for_draft(session, mine)] == [first.id]
        assert [a.id for a in await attachments.list_for_draft(session, other)] == [theirs.id]
        with pytest.raises(attachments.NotFound):
            await attachments.content(session, second.id)


async def test_moving_to_the_submission(db: Database) -> None:
    draft = await make_draft(db)
    upload = check_upload("a.pdf", PDF, ONLY_PDF, 0)
    async with db.session() as session:
        added = await attachments.add_to_draft(session, draft, upload, PDF)
        assert await attachments.move_to_submission(session, draft, "sub-1-" + draft[:20]) == 1
    async with db.session() as session:
        assert await attachments.list_for_draft(session, draft) == []
        moved = await attachments.list_for_submission(session, "sub-1-" + draft[:20])
        assert [a.id for a in moved] == [added.id]
        with pytest.raises(attachments.NotFound):
            await attachments.remove_from_draft(session, draft, added.id)


async def test_no_adding_to_a_missing_draft_or_other_content(db: Database) -> None:
    upload = check_upload("a.pdf", PDF, ONLY_PDF, 0)
    async with db.session() as session:
        with pytest.raises(attachments.NotFound):
            await attachments.add_to_draft(session, "no-such-draft", upload, PDF)
        draft = await make_draft(db)
        with pytest.raises(ValueError):
            await attachments.add_to_draft(session, draft, upload, PDF + b"x")


async def test_message_attachments(db: Database) -> None:
    upload = check_upload("vedtak.pdf", PDF, ONLY_PDF, 0)
    message_id = str(uuid.uuid4())
    async with db.session() as session:
        added = await attachments.add_to_message(session, message_id, upload, PDF)
    async with db.session() as session:
        assert [a.id for a in await attachments.list_for_message(session, message_id)] == [added.id]
