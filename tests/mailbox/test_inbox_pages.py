"""Felles' own digital mailbox over HTTP: agencies send letters through the API, the
person logs in through the real login service (TestID) and reads, searches, archives and
deletes them; the first opening is the sender's "opened" receipt, exactly once."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from felles.config import Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.identity import levels
from felles.mailbox import cms, inbox
from felles.mailbox.cms import self_signed_certificate
from felles.mailbox.inbox import PAGE_SIZE
from felles.mailbox.models import Letter, LetterContent, MailboxProvider
from felles.mailbox.providers import private_key
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person
from tests.mailbox.mail import BATCHES, LETTERS, demo_people, letter, pdf, sender
from tests.portal.flow import log_in, post_form, use_app_as_provider

MAILBOX = "/mailbox"
OPENED = "no.felles.mailbox.letter.opened"
NOT_FOUND = "We could not find that page"


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser."""
    use_app_as_provider(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def felles_people(db: Database) -> list[str]:
    """People with Felles' own mailbox, not reserved, alive."""
    async with db.session() as session:
        found = list(
            await session.scalars(
                select(ContactInfo.pid)
                .join(Person, Person.pid == ContactInfo.pid)
                .where(
                    ContactInfo.mailbox_provider == "felles",
                    ContactInfo.reserved.is_(False),
                    Person.deceased_on.is_(None),
                )
                .order_by(ContactInfo.pid)
            )
        )
    assert len(found) >= 2
    return found


def mark() -> str:
    """A word no other letter has, so a test finds its own letters by searching."""
    return "tst" + secrets.token_hex(4)


async def send(
    client: httpx.AsyncClient, headers: dict[str, str], pid: str, title: str, **fields: Any
) -> str:
    answer = await client.post(LETTERS, json=letter(pid, title=title, **fields), headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["channel"] == "digital"
    return str(answer.json()["id"])


async def agency_name(db: Database, slug: str, lang: str = "en") -> str:
    async with db.session() as session:
        return (await registry.get_agency(session, slug)).name(lang)


def titles(page: httpx.Response) -> list[str]:
    """The letters' titles on a list page, in order."""
    return re.findall(r'class="ds-link" href="/mailbox/letters/[^"]+">([^<]+)</a>', page.text)


def item_of(page: httpx.Response, letter_id: str) -> str:
    """The list item of one letter."""
    found = re.search(
        r'<li class="inbox-item[^"]*">(?:(?!</li>).)*?/mailbox/letters/'
        + re.escape(letter_id)
        + r'">(?:(?!</li>).)*</li>',
        page.text,
        re.S,
    )
    assert found, f"letter {letter_id} is on the page"
    return found.group(0)


async def opened_events(db: Database, letter_id: str) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.type == OPENED, OutboxEvent.subject == letter_id)
            )
            or 0
        )


async def test_the_inbox_lists_ones_own_letters_newest_first(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me, someone_else = (await felles_people(db))[:2]
    nav = await sender(db, client)
    word = mark()
    first = await send(client, nav, me, f"Vedtak {word} en")
    second = await send(client, nav, me, f"Brev {word} to")
    await send(client, nav, someone_else, f"Til en annen {word}")
    later = datetime.now(UTC) + timedelta(days=3)
    await send(client, nav, me, f"Senere {word}", visible_from=later.isoformat())
    batch = await client.post(BATCHES, json={"reference": f"held-{word}"}, headers=nav)
    held = await client.post(
        f"{BATCHES}/{batch.json()['id']}/letters",
        json={"letters": [{**letter(me, title=f"Holdt {word}"), "line": 1}]},
        headers=nav,
    )
    assert held.status_code == 200, held.text

    page = await log_in(http, me, next_path=f"{MAILBOX}?q={word}")
    assert page.status_code == 200 and str(page.url).endswith(f"{MAILBOX}?q={word}")
    assert page.headers["cache-control"] == "no-store"
    # Only this person's, digital, released, visible now: newest first.
    assert titles(page) == [f"Brev {word} to", f"Vedtak {word} en"]
    item = item_of(page, first)
    assert "Unread" in item and "inbox-item--unread" in item  # said in words, not colour only
    assert await agency_name(db, "nav") in item and "<time datetime=" in item
    assert "2 matches" in page.text
    everything = await http.get(MAILBOX)
    assert f"/mailbox/letters/{second}" in everything.text
    assert "unread letter" in everything.text
    # The bar of every portal page leads here.
    portal = await http.get("/portal/inbox")
    assert 'href="/mailbox"' in portal.text and "Digital mailbox" in portal.text


async def test_search_by_title_and_by_sender(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    word = mark()
    from_nav = await send(client, await sender(db, client), me, f"Utbetaling {word}")
    from_tax = await send(client, await sender(db, client, "skatteetaten"), me, f"Skatt {word}")
    await log_in(http, me, next_path=MAILBOX)

    both = await http.get(MAILBOX, params={"q": word.upper()})
    assert titles(both) == [f"Skatt {word}", f"Utbetaling {word}"]
    by_title = await http.get(MAILBOX, params={"q": f"utbetaling {word}"})
    assert titles(by_title) == [f"Utbetaling {word}"]
    # "Tax" is in the Norwegian Tax Administration's name, not in any title of these.
    by_sender = await http.get(MAILBOX, params={"q": f"{word} tax"})
    assert titles(by_sender) == [f"Skatt {word}"], by_sender.text
    assert from_tax in by_sender.text and from_nav not in by_sender.text
    none = await http.get(MAILBOX, params={"q": f"{word} nothing-like-this"})
    assert titles(none) == [] and "No letters match your search" in none.text
    assert 'href="/mailbox"' in none.text  # clear the search


async def test_paging(http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    me = (await felles_people(db))[0]
    nav = await sender(db, client)
    word = mark()
    for n in range(PAGE_SIZE + 1):
        await send(client, nav, me, f"Brev {n:02d} {word}")
    page = await log_in(http, me, next_path=f"{MAILBOX}?q={word}")
    assert len(titles(page)) == PAGE_SIZE and titles(page)[0] == f"Brev {PAGE_SIZE:02d} {word}"
    assert "page 1 of 2" in page.text
    assert f'href="/mailbox?q={word}&amp;page=2"' in page.text
    second = await http.get(MAILBOX, params={"q": word, "page": "2"})
    assert titles(second) == [f"Brev 00 {word}"] and 'rel="prev"' in second.text
    beyond = await http.get(MAILBOX, params={"q": word, "page": "99"})
    assert titles(beyond) == [f"Brev 00 {word}"]
    nonsense = await http.get(MAILBOX, params={"q": word, "page": "x", "folder": "nope"})
    assert nonsense.status_code == 200 and len(titles(nonsense)) == PAGE_SIZE


async def test_read_unread_archive_and_back(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    word = mark()
    letter_id = await send(client, await sender(db, client), me, f"Arkiv {word}")
    here = f"{MAILBOX}?q={word}"
    await log_in(http, me, next_path=here)
    base = f"{MAILBOX}/letters/{letter_id}"

    read = await post_form(http, f"{base}/read", {"back": here})
    assert str(read.url).endswith(f"{here}&done=read")
    assert "The letter is marked as read." in read.text
    assert "Unread" not in item_of(read, letter_id)
    assert await opened_events(db, letter_id) == 0  # marked, not opened: no receipt
    unread = await post_form(http, f"{base}/unread", {"back": here})
    assert "Unread" in item_of(unread, letter_id)

    archived = await post_form(http, f"{base}/archive", {"back": here})
    assert "moved to the archive" in archived.text and letter_id not in archived.text
    archive = await http.get(MAILBOX, params={"folder": "archive", "q": word})
    assert titles(archive) == [f"Arkiv {word}"]
    assert 'aria-current="page"' in archive.text and "Move to the inbox" in archive.text
    restored = await post_form(
        http, f"{base}/restore", {"back": f"{MAILBOX}?folder=archive&q={word}"}
    )
    assert "folder=archive" in str(restored.url) and titles(restored) == []
    assert titles(await http.get(here)) == [f"Arkiv {word}"]
    # Going back never leaves the mailbox.
    away = await post_form(http, f"{base}/read", {"back": "https://evil.example/"})
    assert urlsplit(str(away.url)).path == MAILBOX
    empty = await http.get(MAILBOX, params={"folder": "archive", "q": mark()})
    assert "No letters match your search" in empty.text


async def test_delete_removes_the_content_for_good(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    nav = await sender(db, client)
    word = mark()
    letter_id = await send(client, nav, me, f"Slett {word}")
    here = f"{MAILBOX}?q={word}"
    listed = await log_in(http, me, next_path=here)
    confirm_href = re.search(
        rf'href="(/mailbox/letters/{letter_id}/delete\?back=[^"]+)"', item_of(listed, letter_id)
    )
    assert confirm_href
    confirm = await http.get(confirm_href.group(1).replace("&amp;", "&"))
    assert confirm.status_code == 200 and "Delete the letter?" in confirm.text
    assert f"Slett {word}" in confirm.text and "gone for good" in confirm.text
    async with db.session() as session:  # asking first changed nothing
        assert await session.get(LetterContent, letter_id) is not None

    done = await post_form(http, f"{MAILBOX}/letters/{letter_id}/delete", {"back": here})
    assert "The letter was deleted." in done.text and titles(done) == []
    async with db.session() as session:
        assert await session.get(LetterContent, letter_id) is None
        row = await session.get(Letter, letter_id)
        assert row is not None and row.deleted_at is not None
    gone = await http.get(f"{MAILBOX}/letters/{letter_id}")
    assert gone.status_code == 404 and NOT_FOUND in gone.text
    again = await post_form(http, f"{MAILBOX}/letters/{letter_id}/delete", {"back": here})
    assert again.status_code == 404
    # The sender still sees what became of it.
    status = await client.get(f"{LETTERS}/{letter_id}", headers=nav)
    assert status.status_code == 200 and status.json()["status"] == "delivered"


async def test_opening_a_letter_shows_its_documents_and_tells_the_sender_once(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    nav = await sender(db, client)
    word = mark()
    main_pdf = pdf(f"Vedtak {word}")
    annex_pdf = pdf(f"Vedlegg {word}", pages=2)
    sent = letter(me, title=f"Vedtak om bostøtte {word}", text=f"Vedtak {word}")
    sent["attachments"] = [
        {"name": "vedlegg æøå.pdf", "content_base64": base64.b64encode(annex_pdf).decode()}
    ]
    answer = await client.post(LETTERS, json=sent, headers=nav)
    letter_id = answer.json()["id"]
    assert base64.b64decode(sent["document"]["content_base64"]) == main_pdf
    href = f"{MAILBOX}/letters/{letter_id}"

    page = await log_in(http, me, next_path=href)
    assert page.status_code == 200 and str(page.url).endswith(href)
    assert page.headers["cache-control"] == "no-store"
    assert f"Vedtak om bostøtte {word}" in page.text
    assert await agency_name(db, "nav") in page.text
    assert "vedtak.pdf" in page.text and "vedlegg æøå.pdf" in page.text
    assert f'href="{href}/documents/0"' in page.text
    assert f'href="{href}/documents/1/download"' in page.text

    status = (await client.get(f"{LETTERS}/{letter_id}", headers=nav)).json()
    assert status["status"] == "opened" and status["opened_at"]
    assert await opened_events(db, letter_id) == 1
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None and row.read_at is not None and row.opened_at is not None

    shown = await http.get(f"{href}/documents/0")
    assert shown.status_code == 200 and shown.content == main_pdf
    assert shown.headers["content-type"] == "application/pdf"
    assert shown.headers["content-disposition"].startswith('inline; filename="vedtak.pdf"')
    assert shown.headers["content-security-policy"] == "sandbox"
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.headers["cache-control"] == "no-store"
    saved = await http.get(f"{href}/documents/1/download")
    assert saved.content == annex_pdf
    assert saved.headers["content-disposition"].startswith("attachment;")
    assert (
        "filename*=UTF-8''vedlegg%20%C3%A6%C3%B8%C3%A5.pdf" in saved.headers["content-disposition"]
    )
    for wrong in ("2", "-1", "x", "00000001"):
        assert (await http.get(f"{href}/documents/{wrong}")).status_code == 404

    # Opening it again (or marking it unread and opening it) tells the sender nothing new.
    await post_form(http, f"{href}/unread", {"back": MAILBOX})
    again = await http.get(href)
    assert again.status_code == 200
    assert await opened_events(db, letter_id) == 1
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None and row.read_at is not None and row.status == "opened"


async def test_a_sensitive_letter_needs_a_login_at_level_high(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    word = mark()
    letter_id = await send(
        client, await sender(db, client), me, f"Helse {word}", sensitivity="sensitive"
    )
    href = f"{MAILBOX}/letters/{letter_id}"
    listed = await log_in(http, me, next_path=f"{MAILBOX}?q={word}")
    assert "needs login at level high" in item_of(listed, letter_id)

    for path in (href, f"{href}/documents/0"):
        refused = await http.get(path)
        assert refused.status_code == 303
        target = urlsplit(refused.headers["location"])
        assert target.path == "/portal/login"
        assert parse_qs(target.query) == {"next": [path], "acr": [levels.HIGH]}
    assert await opened_events(db, letter_id) == 0

    # The login service asks again, at level high, and brings the person back.
    stepped_up = await log_in(http, me, next_path=href, acr=levels.HIGH)
    assert stepped_up.status_code == 200 and str(stepped_up.url).endswith(href)
    assert f"Helse {word}" in stepped_up.text and "vedtak.pdf" in stepped_up.text
    assert await opened_events(db, letter_id) == 1


async def test_someone_elses_letter_is_not_found(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me, someone_else = (await felles_people(db))[:2]
    nav = await sender(db, client)
    theirs = await send(client, nav, someone_else, f"Privat {mark()}")
    who = await demo_people(db)
    printed = await client.post(LETTERS, json=letter(who["reserved"]), headers=nav)
    assert printed.json()["channel"] == "print"
    await log_in(http, me, next_path=MAILBOX)

    random_id = str(uuid.uuid4())
    answers = [
        await http.get(f"{MAILBOX}/letters/{ident}")
        for ident in (theirs, random_id, printed.json()["id"], "x" * 300)
    ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert all(NOT_FOUND in a.text for a in answers)
    assert (await http.get(f"{MAILBOX}/letters/{theirs}/documents/0")).status_code == 404
    assert (await http.get(f"{MAILBOX}/letters/{theirs}/delete")).status_code == 404
    for action in ("read", "archive", "delete"):
        tried = await post_form(http, f"{MAILBOX}/letters/{theirs}/{action}", {})
        assert tried.status_code == 404 and NOT_FOUND in tried.text
    async with db.session() as session:
        row = await session.get(Letter, theirs)
        assert row is not None and row.read_at is None and row.folder == "inbox"
        assert row.deleted_at is None and row.opened_at is None
        assert await session.get(LetterContent, theirs) is not None
    assert await opened_events(db, theirs) == 0


async def test_without_a_login_the_person_logs_in_first(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    letter_id = await send(client, await sender(db, client), me, f"Logg inn {mark()}")
    for path in (MAILBOX, f"{MAILBOX}?folder=archive", f"{MAILBOX}/letters/{letter_id}"):
        answer = await http.get(path)
        assert answer.status_code == 303
        target = urlsplit(answer.headers["location"])
        assert target.path == "/portal/login" and parse_qs(target.query)["next"] == [path]
    await http.get("/portal")  # a CSRF cookie, as a browser would have
    pressed = await post_form(
        http, f"{MAILBOX}/letters/{letter_id}/archive", {"back": MAILBOX}, follow_redirects=False
    )
    assert pressed.status_code == 303
    assert pressed.headers["location"] == "/portal/login?next=%2Fmailbox"
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None and row.folder == "inbox"


async def test_a_damaged_letter_says_it_cannot_be_opened(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database
) -> None:
    me = (await felles_people(db))[0]
    word = mark()
    letter_id = await send(client, await sender(db, client), me, f"Skadet {word}")
    async with db.session() as session:
        content = await session.get(LetterContent, letter_id)
        assert content is not None
        content.cms = content.cms[:-40] + bytes(40)  # the last blocks changed
    page = await log_in(http, me, next_path=f"{MAILBOX}/letters/{letter_id}")
    assert page.status_code == 500 and "The letter cannot be opened" in page.text
    assert f"Skadet {word}" not in page.text
    assert await opened_events(db, letter_id) == 0
    document = await http.get(f"{MAILBOX}/letters/{letter_id}/documents/0")
    assert document.status_code == 500 and b"%PDF" not in document.content


async def test_content_that_is_not_a_letter_package_is_unreadable(
    db: Database, settings: Settings, client: httpx.AsyncClient
) -> None:
    await sender(db, client)  # the providers' certificates exist once the API has run
    async with db.session() as session:
        pem = await session.scalar(
            select(MailboxProvider.certificate_pem).where(MailboxProvider.name == "felles")
        )
    assert pem is not None
    recipient = cms.Recipient(x509.load_pem_x509_certificate(pem.encode()))
    for content in (b"not a zip file", b"PK\x03\x04 broken"):
        sealed = inbox.Sealed(_any_item(), cms.encrypt(content, recipient), pem)
        with pytest.raises(inbox.Unreadable):
            await inbox.unseal(sealed, settings.keys_dir)


def _any_item() -> inbox.LetterItem:
    return inbox.LetterItem(
        "x", "974760673", "t", datetime.now(UTC), True, inbox.Folder.inbox, levels.SUBSTANTIAL, []
    )


async def test_a_letter_sealed_before_the_certificate_was_renewed_still_opens(
    http: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    me = (await felles_people(db))[0]
    word = mark()
    letter_id = await send(client, await sender(db, client), me, f"Før fornyelse {word}")
    async with db.session() as session:
        provider = await session.get(MailboxProvider, "felles")
        assert provider is not None
        before = provider.certificate_pem
        renewed = self_signed_certificate(
            private_key(settings.keys_dir, "felles"), provider.display_name
        )
        provider.certificate_pem = renewed.public_bytes(serialization.Encoding.PEM).decode()
    try:
        page = await log_in(http, me, next_path=f"{MAILBOX}/letters/{letter_id}")
        assert page.status_code == 200 and f"Før fornyelse {word}" in page.text
        assert await opened_events(db, letter_id) == 1
    finally:
        async with db.session() as session:
            provider = await session.get(MailboxProvider, "felles")
            assert provider is not None
            provider.certificate_pem = before
