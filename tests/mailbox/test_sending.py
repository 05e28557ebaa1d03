"""Sending one letter over the API, with real machine tokens: which way each person's
letter goes, what is stored (only sealed content, opened here with the provider's own
key), what the sender can see of it, the events, and every kind of bad input."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.mailbox import letters as L
from felles.mailbox.letters_api import LETTER_BODY_BYTES
from felles.mailbox.print_pdf import PostalAddress, address_page
from felles.registry import service as registry
from felles.registry.models import Person
from tests.mailbox.mail import LETTERS, demo_people, letter, pdf, sender
from tests.mailbox.stored import (
    BAD_CHECK_DIGITS,
    NOT_IN_REGISTER,
    PNG,
    events_about,
    expired_certificate,
    letter_count,
    new_person,
    open_sealed,
    problem_of,
    stored,
)
from tests.portal.agencies import machine_token


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def document(name: str, content: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": b64(content)}


async def orgnr(db: Database, slug: str = "nav") -> str:
    async with db.session() as session:
        return (await registry.get_agency(session, slug)).orgnr


# --- Which way a letter goes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "print_allowed", "channel", "reason", "status"),
    [
        ("felles", True, "digital", None, "delivered"),
        ("felles", False, "digital", None, "delivered"),
        ("reserved", True, "print", "reserved", "delivered"),
        ("unregistered", True, "print", "not_registered", "delivered"),
        ("no_box", True, "print", "no_mailbox", "delivered"),
        ("reserved", False, "none", "reserved", "failed"),
        ("unregistered", False, "none", "not_registered", "failed"),
        ("no_box", False, "none", "no_mailbox", "failed"),
    ],
)
async def test_channels(
    db: Database,
    client: httpx.AsyncClient,
    kind: str,
    print_allowed: bool,
    channel: str,
    reason: str | None,
    status: str,
) -> None:
    who = await demo_people(db)
    if not who[kind]:
        pytest.skip(f"the demo country has nobody of kind {kind}")
    headers = await sender(db, client)
    answer = await client.post(
        LETTERS, json=letter(who[kind], print_allowed=print_allowed), headers=headers
    )
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    assert (sent["channel"], sent["reason"], sent["status"]) == (channel, reason, status)
    kept = await stored(db, sent["id"])
    assert kept.letter.recipient_pid == who[kind]
    assert kept.letter.provider == {"digital": "felles", "print": "print", "none": None}[channel]
    assert (kept.cms is None) == (channel == "none"), "only a letter that goes somewhere is sealed"
    assert (kept.letter.failed_at is None) == (status != "failed")
    assert (kept.letter.delivered_at is None) == (status != "delivered")
    if channel == "digital":
        assert kept.notifications and {n.status for n in kept.notifications} == {"pending"}
        assert {n.repetition for n in kept.notifications} == {0, 1}
    else:
        assert kept.notifications == [], "nobody is told of a letter on paper or none"


async def test_a_deceased_person_gets_no_letter(db: Database, client: httpx.AsyncClient) -> None:
    dead = await new_person(db, seed=1, deceased=True, email="olav@example.org")
    answer = await client.post(LETTERS, json=letter(dead), headers=await sender(db, client))
    assert answer.status_code == 201, answer.text
    assert answer.json() | {"id": None} == {
        "id": None,
        "channel": "none",
        "reason": "deceased",
        "status": "failed",
    }
    kept = await stored(db, answer.json()["id"])
    assert kept.cms is None and kept.notifications == []


async def test_nobody_to_post_it_to(db: Database, client: httpx.AsyncClient) -> None:
    homeless = await new_person(db, seed=4, registered=False, address=False)
    headers = await sender(db, client)
    answer = await client.post(LETTERS, json=letter(homeless), headers=headers)
    assert (answer.json()["channel"], answer.json()["reason"]) == ("none", "no_address")
    answer = await client.post(LETTERS, json=letter(homeless, print_allowed=False), headers=headers)
    assert (answer.json()["channel"], answer.json()["reason"]) == ("none", "not_registered")


async def test_a_digital_letter_opens_to_exactly_what_was_sent(
    db: Database, client: httpx.AsyncClient, settings: Settings
) -> None:
    who = await demo_people(db)
    main = pdf("Vedtak: du får bostøtte", pages=2)
    extras = [pdf("Vedlegg en"), pdf("Vedlegg to", pages=3)]
    body = {
        **letter(who["felles"], title="Vedtak om bostøtte", sender_ref="sak-17"),
        "document": document("vedtak.pdf", main),
        "attachments": [document(f"vedlegg-{i}.pdf", x) for i, x in enumerate(extras)],
        "sensitivity": "sensitive",
    }
    answer = await client.post(LETTERS, json=body, headers=await sender(db, client))
    assert answer.status_code == 201, answer.text
    kept = await stored(db, answer.json()["id"])
    assert kept.cms is not None and kept.letter.size == len(kept.cms)
    assert main not in kept.cms, "the content is sealed"
    opened = L.unpack(await open_sealed(db, settings, "felles", kept.cms))
    assert opened.title == "Vedtak om bostøtte"
    assert opened.sender == "Arbeids- og velferdsetaten (Nav)"
    assert [d.name for d in opened.documents] == ["vedtak.pdf", "vedlegg-0.pdf", "vedlegg-1.pdf"]
    assert [d.content for d in opened.documents] == [main, *extras]
    assert kept.letter.documents == [
        {"name": "vedtak.pdf", "type": "application/pdf", "size": len(main), "main": True},
        *(
            {"name": f"vedlegg-{i}.pdf", "type": "application/pdf", "size": len(x), "main": False}
            for i, x in enumerate(extras)
        ),
    ]
    assert kept.letter.level == L.SENSITIVITY_LEVELS["sensitive"]
    assert kept.letter.mailbox_address, "the person's address at the provider"


def test_the_package_is_a_zip_others_read(tmp_path: Path) -> None:
    """`letters.package` writes its ZIP itself (for speed): Python's zipfile and Info-ZIP's
    `unzip` read it, names in UTF-8 and every CRC right."""
    main, extra = pdf("Vedtak"), pdf("Legeerklæring", pages=2)
    content = L.LetterIn(
        recipient="01010012356",
        title="Vedtak om bostøtte",
        main=L.Document("vedtak.pdf", main),
        attachments=(L.Document("legeerklæring.pdf", extra),),
    )
    package = L.package(content, "id-1", "NAV")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == ["manifest.json", "00-vedtak.pdf", "01-legeerklæring.pdf"]
        assert archive.read(names[2]) == extra
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    assert L.unpack(package).documents[1] == L.Document("legeerklæring.pdf", extra)
    if shutil.which("unzip") is None:
        pytest.skip("Info-ZIP's unzip is not installed")
    (tmp_path / "letter.zip").write_bytes(package)
    tested = subprocess.run(["unzip", "-t", str(tmp_path / "letter.zip")], capture_output=True)
    assert tested.returncode == 0 and b"No errors detected" in tested.stdout, tested.stdout


async def test_a_print_letter_is_sealed_for_the_print_provider(
    db: Database, client: httpx.AsyncClient, settings: Settings
) -> None:
    who = await demo_people(db)
    body = {**letter(who["reserved"]), "attachments": [document("v.pdf", pdf("V", pages=2))]}
    answer = await client.post(LETTERS, json=body, headers=await sender(db, client))
    assert answer.json()["channel"] == "print", answer.text
    kept = await stored(db, answer.json()["id"])
    assert kept.cms is not None
    package = L.unpack(await open_sealed(db, settings, "print", kept.cms))
    printed = PdfReader(io.BytesIO(L.print_document(package)))
    assert len(printed.pages) == 1 + 1 + 2, "an address page, then every document's pages"
    address_page = printed.pages[0].extract_text()
    async with db.session() as session:
        person = await session.get(Person, who["reserved"])
    assert person is not None and person.street and person.street in address_page
    with pytest.raises(Exception):  # noqa: B017 - nobody else's key opens it
        await open_sealed(db, settings, "felles", kept.cms)


# --- What the sender sees -------------------------------------------------------------


async def test_status_is_for_the_sender_only(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    mine = await sender(db, client)
    answer = await client.post(LETTERS, json=letter(who["felles"], sender_ref="r1"), headers=mine)
    letter_id = answer.json()["id"]
    status = await client.get(f"{LETTERS}/{letter_id}", headers=mine)
    assert status.status_code == 200, status.text
    seen = status.json()
    assert seen["id"] == letter_id and seen["sender_ref"] == "r1" and seen["batch_id"] is None
    assert (seen["channel"], seen["status"], seen["notification_failed"]) == (
        "digital",
        "delivered",
        False,
    )
    for moment in ("created_at", "delivered_at"):
        parsed = datetime.fromisoformat(seen[moment])
        assert parsed.tzinfo is not None, f"{moment} says its time zone: {seen[moment]}"
        assert abs(parsed - datetime.now(UTC)) < timedelta(minutes=5)
    assert seen["opened_at"] is None and seen["failed_at"] is None
    assert who["felles"] not in status.text and "title" not in seen
    theirs = await sender(db, client, "skatteetaten")
    problem_of(await client.get(f"{LETTERS}/{letter_id}", headers=theirs), 404, "not-found")
    listed = await client.get(LETTERS, params={"limit": 1000}, headers=theirs)
    assert letter_id not in listed.text
    unknown = "01a00000-0000-7000-8000-000000000000"
    problem_of(await client.get(f"{LETTERS}/{unknown}", headers=mine), 404, "not-found")
    problem_of(await client.get(f"{LETTERS}/not-an-id", headers=mine), 422, "validation")


async def test_paging_and_filters(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client, "lanekassen")
    sent = []
    for n, (kind, allowed) in enumerate(
        [("felles", True), ("reserved", False), ("felles", True), ("reserved", True)] * 2
    ):
        body = letter(who[kind], print_allowed=allowed, sender_ref=f"p{n}")
        answer = await client.post(LETTERS, json=body, headers=headers)
        sent.append(answer.json())
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"after": after} if after else {})
        page = await client.get(LETTERS, params=params, headers=headers)
        assert page.status_code == 200, page.text
        assert len(page.json()["letters"]) <= 3
        seen += page.json()["letters"]
        after = page.json()["next"]
        if after is None:
            break
    ids = [s["id"] for s in seen]
    assert len(ids) == len(set(ids)), "no letter on two pages"
    assert [i for i in ids if i in {s["id"] for s in sent}] == [s["id"] for s in sent]
    failed = await client.get(LETTERS, params={"status": "failed"}, headers=headers)
    assert {x["status"] for x in failed.json()["letters"]} == {"failed"}
    assert {x["id"] for x in failed.json()["letters"]} >= {
        s["id"] for s in sent if s["status"] == "failed"
    }
    problem_of(
        await client.get(LETTERS, params={"status": "lost"}, headers=headers), 422, "validation"
    )
    problem_of(await client.get(LETTERS, params={"limit": 0}, headers=headers), 422, "validation")
    problem_of(await client.get(LETTERS, params={"after": "x"}, headers=headers), 422, "validation")


# --- Events ---------------------------------------------------------------------------


async def test_events_tell_what_became_of_a_letter_and_nothing_more(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    delivered = await client.post(LETTERS, json=letter(who["felles"], "Hemmelig"), headers=headers)
    failed = await client.post(
        LETTERS, json=letter(who["reserved"], print_allowed=False), headers=headers
    )
    nav = await orgnr(db)
    for answer, kind in ((delivered, "delivered"), (failed, "failed")):
        [event] = await events_about(db, answer.json()["id"])
        assert event.type == f"no.felles.mailbox.letter.{kind}"
        assert event.recipient_orgnr == nav
        assert event.data["letter_id"] == answer.json()["id"]
        assert event.data["status"] == kind
        text = json.dumps(event.data, ensure_ascii=False)
        for secret in (who["felles"], who["reserved"], "Vedtak om bostøtte", "Hemmelig"):
            assert secret not in text
        assert not {"recipient", "pid", "title", "content", "documents"} & set(event.data)
    assert failed.json()["reason"] == "reserved"


# --- Bad input ------------------------------------------------------------------------


def docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


def big_pdf(size: int) -> bytes:
    """A PDF (as far as a quick look goes) of `size` bytes."""
    head, tail = b"%PDF-1.7\n%", b"\n%%EOF\n"
    return head + b"0" * (size - len(head) - len(tail)) + tail


def with_(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, **changes}


async def test_refusals_are_problem_documents(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    good = letter(who["felles"])
    nav = await orgnr(db)
    before = await letter_count(db, nav)

    async def refused(body: Any, status: int, slug: str, field: str | None) -> None:
        problem_of(await client.post(LETTERS, json=body, headers=headers), status, slug, field)

    await refused(with_(good, recipient=BAD_CHECK_DIGITS), 422, "invalid-number", "recipient")
    await refused(with_(good, recipient="0101001235"), 422, "invalid-number", "recipient")
    await refused(with_(good, recipient=NOT_IN_REGISTER), 422, "unknown-recipient", "recipient")
    for fake in (PNG, docx(), b"", b"%PDF-1.7 but no end"):
        body = with_(good, document=document("vedtak.pdf", fake))
        await refused(body, 422, "validation", "document.content_base64")
    attachment = with_(good, attachments=[document("a.pdf", pdf("a")), document("b.pdf", PNG)])
    await refused(attachment, 422, "validation", "attachments[1].content_base64")
    for not_base64 in ("%%%", "QUJD=x", "QQ", "QUJD\n"):
        body = with_(good, document={"name": "v.pdf", "content_base64": not_base64})
        await refused(body, 422, "validation", "document.content_base64")
    await refused(with_(good, document={"name": "v.pdf"}), 422, "validation", None)
    await refused(with_(good, title="x" * 201), 422, "validation", "title")
    await refused(with_(good, title=""), 422, "validation", "title")
    await refused(with_(good, title="   "), 422, "validation", "title")
    await refused(with_(good, sensitivity="secret"), 422, "validation", "sensitivity")
    await refused(with_(good, extra="field"), 422, "validation", "extra")
    await refused(with_(good, repeat_after_days=0), 422, "validation", "repeat_after_days")
    many = [document(f"{i}.pdf", pdf("a")) for i in range(21)]
    await refused(with_(good, attachments=many), 422, "validation", "attachments")
    await refused(with_(good, document=document("a/b.pdf", pdf("a"))), 422, "validation", None)
    await refused(with_(good, document=document("x" * 101, pdf("a"))), 422, "validation", None)
    wrong_type = {"name": "v.pdf", "type": "image/png", "content_base64": b64(pdf("a"))}
    await refused(with_(good, document=wrong_type), 422, "validation", "document.type")
    await refused(with_(good, visible_from="tomorrow"), 422, "validation", "visible_from")
    await refused([good], 422, "validation", None)
    assert await letter_count(db, nav) == before, "nothing refused was stored"
    twenty = await client.post(LETTERS, json=with_(good, attachments=many[:20]), headers=headers)
    assert twenty.status_code == 201, twenty.text


async def test_documents_over_ten_megabytes(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    nav = await orgnr(db)
    before = await letter_count(db, nav)
    half = L.MAX_LETTER_BYTES // 2 + 50_000
    body = with_(
        letter(who["felles"]),
        document=document("a.pdf", big_pdf(half)),
        attachments=[document("b.pdf", big_pdf(half))],
    )
    raw = json.dumps(body).encode()
    assert len(raw) < LETTER_BODY_BYTES, "within the body limit"
    answer = await client.post(
        LETTERS, content=raw, headers=headers | {"content-type": "application/json"}
    )
    problem_of(answer, 422, "validation", "document")
    assert await letter_count(db, nav) == before


async def test_a_body_over_the_limit_is_refused_unread(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    nav = await orgnr(db)
    before = await letter_count(db, nav)
    body = with_(letter(who["felles"]), document=document("a.pdf", big_pdf(11_000_000)))
    raw = json.dumps(body).encode()
    assert len(raw) > LETTER_BODY_BYTES
    answer = await client.post(
        LETTERS, content=raw, headers=headers | {"content-type": "application/json"}
    )
    problem_of(answer, 413, "payload-too-large")
    assert await letter_count(db, nav) == before


async def test_idempotency_key(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    nav = await orgnr(db)
    before = await letter_count(db, nav)
    body = letter(who["felles"], sender_ref="once")
    keyed = headers | {"idempotency-key": "letter-once-1"}
    first = await client.post(LETTERS, json=body, headers=keyed)
    again = await client.post(LETTERS, json=body, headers=keyed)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert await letter_count(db, nav) == before + 1
    [event] = await events_about(db, first.json()["id"])
    assert event.type == "no.felles.mailbox.letter.delivered"
    other = await client.post(LETTERS, json=with_(body, sender_ref="twice"), headers=keyed)
    problem_of(other, 409, "conflict", "Idempotency-Key")
    assert await letter_count(db, nav) == before + 1
    # The key is the sender's own: another agency's same key sends its own letter.
    theirs = await sender(db, client, "skatteetaten")
    fresh = await client.post(
        LETTERS, json=body, headers=theirs | {"idempotency-key": "letter-once-1"}
    )
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
    bad_key = await client.post(
        LETTERS, json=body, headers=headers | {"idempotency-key": "x" * 201}
    )
    problem_of(bad_key, 422, "validation", "Idempotency-Key")


@pytest.mark.parametrize(
    ("print_allowed", "channel", "status"),
    [(True, "print", "delivered"), (False, "none", "failed")],
)
async def test_an_expired_provider_certificate(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    print_allowed: bool,
    channel: str,
    status: str,
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    async with expired_certificate(db, settings, "felles"):
        answer = await client.post(
            LETTERS, json=letter(who["felles"], print_allowed=print_allowed), headers=headers
        )
    assert answer.status_code == 201, answer.text
    assert answer.json() | {"id": None} == {
        "id": None,
        "channel": channel,
        "reason": "certificate_expired",
        "status": status,
    }
    after = await client.post(LETTERS, json=letter(who["felles"]), headers=headers)
    assert after.json()["channel"] == "digital", "a renewed certificate is used again"


async def test_an_expired_print_certificate(
    db: Database, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Nobody can post it now: the letter fails for that reason, not the person's."""
    who = await demo_people(db)
    headers = await sender(db, client)
    async with expired_certificate(db, settings, "print"):
        answer = await client.post(LETTERS, json=letter(who["reserved"]), headers=headers)
        digital = await client.post(LETTERS, json=letter(who["felles"]), headers=headers)
    assert answer.json() | {"id": None} == {
        "id": None,
        "channel": "none",
        "reason": "certificate_expired",
        "status": "failed",
    }
    assert digital.json()["channel"] == "digital"


async def test_tokens(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    body = letter(who["felles"])
    wrong = await machine_token(db, client, await orgnr(db), "felles:krr.contact")
    answer = await client.post(LETTERS, json=body, headers={"authorization": f"Bearer {wrong}"})
    problem_of(answer, 403, "forbidden")
    problem_of(await client.post(LETTERS, json=body), 401, "unauthorized")
    listed = await client.get(LETTERS, headers={"authorization": f"Bearer {wrong}"})
    problem_of(listed, 403, "forbidden")


async def test_when_a_letter_becomes_visible(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    in_oslo = later.astimezone(UTC).replace(tzinfo=None).isoformat() + "+02:00"
    expected = later - timedelta(hours=2)
    answer = await client.post(
        LETTERS,
        json=letter(who["felles"], visible_from=in_oslo, repeat_after_days=3),
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    kept = await stored(db, answer.json()["id"])
    visible = kept.letter.visible_from
    assert (visible if visible.tzinfo else visible.replace(tzinfo=UTC)) == expected
    dues = sorted(
        {
            (n.due_at if n.due_at.tzinfo else n.due_at.replace(tzinfo=UTC))
            for n in kept.notifications
        }
    )
    assert dues == [expected, expected + timedelta(days=3)]
    # A time without its zone is ambiguous; one far in the future is refused too.
    naive = letter(who["felles"], visible_from=later.replace(tzinfo=None).isoformat())
    problem_of(await client.post(LETTERS, json=naive, headers=headers), 422, "validation")
    far = letter(who["felles"], visible_from="9999-12-31T23:59:59Z")
    problem_of(await client.post(LETTERS, json=far, headers=headers), 422, "validation")


async def test_what_cannot_be_stored_or_printed(db: Database, client: httpx.AsyncClient) -> None:
    """Text PostgreSQL refuses (NUL), files that only look like PDFs at their ends: each a
    problem naming the field, never a server error, on paper and digital alike."""
    who = await demo_people(db)
    headers = await sender(db, client)
    nav = await orgnr(db)
    before = await letter_count(db, nav)
    good = letter(who["reserved"])
    for field in ("title", "sender_ref"):
        for text in ("a\x00b", "line\nbreak", "bell\x07"):
            answer = await client.post(LETTERS, json=with_(good, **{field: text}), headers=headers)
            problem_of(answer, 422, "validation", field)
    nul_name = with_(good, document=document("a\x00.pdf", pdf("a")))
    problem_of(await client.post(LETTERS, json=nul_name, headers=headers), 422, "validation")
    surrogate = json.dumps(with_(good, title="a\ud800b")).encode()
    answer = await client.post(
        LETTERS, content=surrogate, headers=headers | {"content-type": "application/json"}
    )
    problem_of(answer, 422, "validation", "title")
    looks_like_pdf = b"%PDF-1.7\nnot really\n%%EOF\n"
    for body, field in (
        (with_(good, document=document("a.pdf", looks_like_pdf)), "document.content_base64"),
        (
            with_(
                good, attachments=[document("b.pdf", pdf("b")), document("c.pdf", looks_like_pdf)]
            ),
            "attachments[1].content_base64",
        ),
    ):
        problem_of(await client.post(LETTERS, json=body, headers=headers), 422, "validation", field)
    assert await letter_count(db, nav) == before
    # A digital letter is not opened on its way: its provider's reader will say.
    digital = with_(letter(who["felles"]), document=document("a.pdf", looks_like_pdf))
    assert (await client.post(LETTERS, json=digital, headers=headers)).status_code == 201


async def test_a_printed_title_with_typographic_characters(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    title = "Vedtak – bostøtte “2026” …"
    body = letter(who["reserved"], title=title)
    answer = await client.post(LETTERS, json=body, headers=await sender(db, client))
    assert answer.status_code == 201, answer.text
    address = PostalAddress("Åse Øvrebø–Lie", "Storgata 1", "0155", "OSLO")
    page = address_page(address, "Arbeids- og velferdsetaten", title, "ref “1”")
    assert PdfReader(io.BytesIO(page)).pages[0].extract_text().count("–") >= 2


async def test_who_is_told_and_when(db: Database, client: httpx.AsyncClient) -> None:
    headers = await sender(db, client)
    both = await new_person(db, seed=2, email="kari@example.org", mobile="+4791234567")
    unreachable = await new_person(db, seed=3)

    async def sent_to(pid: str, **fields: Any) -> Any:
        answer = await client.post(LETTERS, json=letter(pid, **fields), headers=headers)
        assert answer.status_code == 201, answer.text
        return await stored(db, answer.json()["id"])

    told = await sent_to(both, repeat_after_days=14)
    assert sorted((n.channel, n.repetition) for n in told.notifications) == [
        ("email", 0), ("email", 1), ("sms", 0), ("sms", 1)
    ]  # fmt: skip
    first, reminder = sorted({n.due_at for n in told.notifications})
    assert reminder - first == timedelta(days=14)
    once = await sent_to(both, repeat_after_days=None)
    assert sorted(n.repetition for n in once.notifications) == [0, 0]
    assert (await sent_to(both, notify=False)).notifications == []
    nobody = await sent_to(unreachable)
    assert nobody.notifications == [] and nobody.letter.notification_failed
    status = await client.get(f"{LETTERS}/{nobody.letter.id}", headers=headers)
    assert status.json()["notification_failed"] is True
    async with db.session() as session:
        told = await session.scalars(
            select(OutboxEvent.type).where(OutboxEvent.subject == nobody.letter.id)
        )
        assert sorted(told) == [
            "no.felles.mailbox.letter.delivered", "no.felles.mailbox.letter.notification_failed"
        ]  # fmt: skip
