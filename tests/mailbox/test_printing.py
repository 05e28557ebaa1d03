"""The print queue, end to end: letters to people without a digital mailbox are sent
through the real API, fetched by the print provider with a real machine token, opened
with the real `openssl cms` and read with `pdftotext` (the address page first, then the
letter), and confirmed printed; the demo's print provider is the real `felles` command."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, update

from felles.app import create_app
from felles.config import Environment, Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.identity import clients
from felles.mailbox import batches, cms, printing
from felles.mailbox import letters as L
from felles.mailbox.cms import make_test_recipient, self_signed_certificate
from felles.mailbox.models import Letter, LetterContent
from felles.mailbox.print_api import PRINT_SCOPE
from felles.mailbox.print_pdf import PostalAddress
from felles.registry import service as registry
from felles.registry.models import Person
from tests.conftest import DEMO_PERSONS, DEMO_SEED, run_felles, scratch_database
from tests.mailbox.mail import BATCHES, LETTERS, demo_people, letter, pdf, sender
from tests.portal.agencies import machine_token

PRINT = "/api/mailbox/v1/print"
PRINTED = "no.felles.mailbox.letter.printed"


async def print_provider(db: Database, client: httpx.AsyncClient) -> dict[str, str]:
    """Headers with a machine token holding the print scope, as the demo has it: owned by
    digdir, not public, granted to digdir."""
    async with db.session() as session:
        digdir = (await registry.get_agency(session, "digdir")).orgnr
        if PRINT_SCOPE not in {s.name for s in await clients.list_scopes(session)}:
            await clients.add_scope(session, PRINT_SCOPE, owner_orgnr=digdir, public=False)
    return {"authorization": f"Bearer {await machine_token(db, client, digdir, PRINT_SCOPE)}"}


@pytest.fixture
async def provider(db: Database, client: httpx.AsyncClient) -> dict[str, str]:
    return await print_provider(db, client)


@pytest.fixture
async def nav(db: Database, client: httpx.AsyncClient) -> dict[str, str]:
    return await sender(db, client)


async def queued(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The whole print queue, page by page."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 50, **({"after": after} if after else {})}
        page = await client.get(f"{PRINT}/letters", params=params, headers=headers)
        assert page.status_code == 200, page.text
        found += page.json()["letters"]
        after = page.json()["next"]
        if after is None:
            return found


async def printed_events(db: Database, letter_id: str) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == PRINTED, OutboxEvent.subject == letter_id)
        )
    return count or 0


def run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pdf_text(pdf: Path, first: int, last: int | None = None) -> str:
    """The words on pages `first` to `last` (pdftotext), whitespace made single spaces."""
    pages = ["-f", str(first), *(["-l", str(last)] if last else [])]
    return " ".join(run("pdftotext", *pages, "-enc", "UTF-8", pdf, "-").split())


async def postal_lines(db: Database, pid: str) -> list[str]:
    """The person's name, street and postal code and town, as the population register has
    them."""
    async with db.session() as session:
        person = await session.get(Person, pid)
    assert person is not None and person.street and person.postal_code and person.postal_town
    return [person.full_name, person.street, f"{person.postal_code} {person.postal_town}"]


@pytest.mark.parametrize("kind", ["reserved", "unregistered"])
async def test_a_letter_on_paper_from_sending_to_posting(
    db: Database,
    client: httpx.AsyncClient,
    settings: Settings,
    provider: dict[str, str],
    nav: dict[str, str],
    tmp_path: Path,
    kind: str,
) -> None:
    pid = (await demo_people(db))[kind]
    text = f"Vedtak om bostotte for {kind}"
    sent = await client.post(LETTERS, json=letter(pid, text, sender_ref=f"ref-{kind}"), headers=nav)
    assert sent.status_code == 201, sent.text
    letter_id = sent.json()["id"]
    reason = "reserved" if kind == "reserved" else "not_registered"
    assert sent.json() == {
        "id": letter_id, "channel": "print", "reason": reason, "status": "delivered"
    }  # fmt: skip

    # In the queue: what the print provider needs, nothing about the recipient.
    [entry] = [q for q in await queued(client, provider) if q["id"] == letter_id]
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None
        assert entry == {
            "id": letter_id,
            "created_at": entry["created_at"],
            "size": row.size,
            "sender_orgnr": row.sender_orgnr,
        }
        nav_orgnr = (await registry.get_agency(session, "nav")).orgnr
    assert entry["sender_orgnr"] == nav_orgnr
    assert datetime.fromisoformat(entry["created_at"]).tzinfo is not None

    # The print document over HTTP, and the certificate it is sealed to.
    fetched = await client.get(f"{PRINT}/letters/{letter_id}/document", headers=provider)
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-type"] == "application/pkcs7-mime; smime-type=enveloped-data"
    disposition = fetched.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f'filename="{letter_id}.p7m"' in disposition
    assert fetched.headers["cache-control"] == "no-store"
    assert fetched.content[:1] == b"\x30" and b"%PDF" not in fetched.content  # DER, sealed
    async with db.session() as session:
        stored = await session.get(LetterContent, letter_id)
        assert stored is not None and len(stored.cms) == entry["size"]
        assert stored.cms != fetched.content  # the print document is made when fetched
    certificate = await client.get(f"{PRINT}/certificate", headers=provider)
    assert certificate.status_code == 200
    assert certificate.headers["content-type"].startswith("application/pem-certificate-chain")
    assert "PRIVATE" not in certificate.text
    key_file = settings.keys_dir / "mailbox-print.key"
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    public = x509.load_pem_x509_certificate(certificate.content).public_key()
    assert public == key.public_key()  # the certificate says which key opens the letters

    # The print provider opens it with the real openssl and its own key.
    sealed, cert_pem = tmp_path / "letter.p7m", tmp_path / "cert.pem"
    opened = tmp_path / "out.pdf"
    sealed.write_bytes(fetched.content)
    cert_pem.write_bytes(certificate.content)
    run("openssl", "cms", "-decrypt", "-inform", "DER", "-in", sealed, "-inkey", key_file,
        "-recip", cert_pem, "-out", opened)  # fmt: skip
    assert opened.read_bytes().startswith(b"%PDF-")
    first_page = pdf_text(opened, 1, 1)
    for line in await postal_lines(db, pid):
        assert line in first_page
    assert "Vedtak om bostøtte" in first_page and f"ref-{kind}" in first_page
    assert text not in first_page and text in pdf_text(opened, 2)

    # Confirmed printed: the sender sees it, and hears it once.
    confirmed = await client.post(f"{PRINT}/letters/{letter_id}/printed", headers=provider)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "printed" and confirmed.json()["id"] == letter_id
    status = (await client.get(f"{LETTERS}/{letter_id}", headers=nav)).json()
    assert status["status"] == "printed" and status["printed_at"]
    assert await printed_events(db, letter_id) == 1
    again = await client.post(f"{PRINT}/letters/{letter_id}/printed", headers=provider)
    assert again.status_code == 200 and again.json() == confirmed.json()
    assert await printed_events(db, letter_id) == 1

    # Posted: out of the queue, and the print document is gone.
    assert letter_id not in {q["id"] for q in await queued(client, provider)}
    gone = await client.get(f"{PRINT}/letters/{letter_id}/document", headers=provider)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/problem+json")
    async with db.session() as session:
        assert await session.get(LetterContent, letter_id) is None
        row = await session.get(Letter, letter_id)
        assert row is not None and row.size == entry["size"]  # the metadata stays


async def test_confirmations_at_the_same_time_tell_the_sender_once(
    db: Database, client: httpx.AsyncClient, provider: dict[str, str], nav: dict[str, str]
) -> None:
    pid = (await demo_people(db))["reserved"]
    letter_id = (await client.post(LETTERS, json=letter(pid), headers=nav)).json()["id"]
    answers = await asyncio.gather(
        *(client.post(f"{PRINT}/letters/{letter_id}/printed", headers=provider) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["printed_at"] for a in answers}) == 1
    assert await printed_events(db, letter_id) == 1


async def test_the_queue_is_oldest_first_page_by_page(
    db: Database, client: httpx.AsyncClient, provider: dict[str, str], nav: dict[str, str]
) -> None:
    who = await demo_people(db)
    mine = []
    for pid in (who["reserved"], who["unregistered"], who["reserved"]):
        sent = await client.post(LETTERS, json=letter(pid), headers=nav)
        mine.append(sent.json()["id"])
    walked: list[str] = []
    after = None
    while True:
        params = {"limit": 1, **({"after": after} if after else {})}
        page = (await client.get(f"{PRINT}/letters", params=params, headers=provider)).json()
        assert len(page["letters"]) <= 1
        walked += [q["id"] for q in page["letters"]]
        if page["next"] is None:
            break
        assert page["next"] == page["letters"][-1]["id"]
        after = page["next"]
    assert [i for i in walked if i in mine] == mine
    assert len(walked) == len(set(walked))
    for letter_id in mine:  # leave the queue as we found it
        await client.post(f"{PRINT}/letters/{letter_id}/printed", headers=provider)


async def test_only_print_providers_see_the_queue(
    db: Database, client: httpx.AsyncClient, provider: dict[str, str], nav: dict[str, str]
) -> None:
    pid = (await demo_people(db))["reserved"]
    letter_id = (await client.post(LETTERS, json=letter(pid), headers=nav)).json()["id"]
    calls = [
        ("GET", f"{PRINT}/letters"),
        ("GET", f"{PRINT}/letters/{letter_id}/document"),
        ("GET", f"{PRINT}/certificate"),
        ("POST", f"{PRINT}/letters/{letter_id}/printed"),
    ]
    for method, path in calls:
        refused = await client.request(method, path, headers=nav)  # a sender, no print scope
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert PRINT_SCOPE in refused.json()["detail"]
        assert (await client.request(method, path)).status_code == 401
    async with db.session() as session:
        row = await session.get(Letter, letter_id)
        assert row is not None and row.status == "delivered"
    await client.post(f"{PRINT}/letters/{letter_id}/printed", headers=provider)


async def test_letters_not_on_paper_are_not_in_the_queue(
    db: Database, client: httpx.AsyncClient, provider: dict[str, str], nav: dict[str, str]
) -> None:
    who = await demo_people(db)
    digital = await client.post(LETTERS, json=letter(who["felles"]), headers=nav)
    assert digital.json()["channel"] == "digital"
    refused = await client.post(
        LETTERS, json=letter(who["reserved"], print_allowed=False), headers=nav
    )
    assert refused.status_code == 201
    assert refused.json()["channel"] == "none" and refused.json()["reason"] == "reserved"
    in_queue = {q["id"] for q in await queued(client, provider)}
    unknown = "0190a0a0-0000-7000-8000-000000000000"
    for letter_id in (digital.json()["id"], refused.json()["id"], unknown):
        assert letter_id not in in_queue
        for method, path in (("GET", "document"), ("POST", "printed")):
            answer = await client.request(
                method, f"{PRINT}/letters/{letter_id}/{path}", headers=provider
            )
            assert answer.status_code == 404, answer.text
            assert answer.json()["type"] == "/problems/not-found"
    assert await printed_events(db, digital.json()["id"]) == 0
    status = (await client.get(f"{LETTERS}/{digital.json()['id']}", headers=nav)).json()
    assert status["status"] == "delivered" and status["printed_at"] is None
    # Malformed ids and cursors are refused before anything is looked up.
    bad = await client.get(f"{PRINT}/letters/not-an-id/document", headers=provider)
    assert bad.status_code == 422
    cursor = await client.get(
        f"{PRINT}/letters", params={"after": digital.json()["id"]}, headers=provider
    )
    assert cursor.status_code == 422 and cursor.json()["errors"][0]["field"] == "after"


async def test_letters_held_back_wait_outside_the_queue(
    db: Database, client: httpx.AsyncClient, provider: dict[str, str], nav: dict[str, str]
) -> None:
    who = await demo_people(db)
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    held = await client.post(LETTERS, json=letter(who["reserved"], visible_from=later), headers=nav)
    assert held.json()["channel"] == "print"
    batch = (
        await client.post(BATCHES, json={"reference": f"print-{datetime.now(UTC)}"}, headers=nav)
    ).json()
    filled = await client.post(
        f"{BATCHES}/{batch['id']}/letters",
        json={"letters": [{**letter(who["unregistered"]), "line": 0}]},
        headers=nav,
    )
    [in_batch] = filled.json()["letters"]
    assert in_batch["channel"] == "print"
    in_queue = {q["id"] for q in await queued(client, provider)}
    for letter_id in (held.json()["id"], in_batch["id"]):
        assert letter_id not in in_queue
        for method, path in (("GET", "document"), ("POST", "printed")):
            answer = await client.request(
                method, f"{PRINT}/letters/{letter_id}/{path}", headers=provider
            )
            assert answer.status_code == 409, answer.text
    # Once the batch is released, its letter is waiting to be printed.
    committed = await client.post(f"{BATCHES}/{batch['id']}/commit", headers=nav)
    assert committed.status_code == 200
    await batches.release_all(db)
    assert in_batch["id"] in {q["id"] for q in await queued(client, provider)}
    done = await client.post(f"{PRINT}/letters/{in_batch['id']}/printed", headers=provider)
    assert done.status_code == 200 and await printed_events(db, in_batch["id"]) == 1


async def test_a_letter_that_cannot_be_printed_is_refused_when_sent(
    db: Database, client: httpx.AsyncClient, nav: dict[str, str]
) -> None:
    """A file that looks like a PDF (header and end marker) but is none is refused when
    it would go to print, not found out when the print provider fetches it; and a stored
    letter that cannot be made printable is an `Unprintable` error, not a crash."""
    pid = (await demo_people(db))["reserved"]
    broken = letter(pid)
    broken["document"]["content_base64"] = base64.b64encode(
        b"%PDF-1.7\nnot really a PDF\n%%EOF\n"
    ).decode()
    sent = await client.post(LETTERS, json=broken, headers=nav)
    assert sent.status_code == 422, sent.text
    assert sent.json()["errors"][0]["field"] == "document.content_base64"
    key, certificate = make_test_recipient("Felles print and post")
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(printing.Unprintable):
        printing.print_document(b"not CMS at all", key, pem)


def test_letters_sealed_before_a_certificate_renewal_still_open(tmp_path: Path) -> None:
    """The print queue's certificate is renewed with the same key (providers.py): a letter
    sealed to the certificate before names that one, and still opens. A letter sealed to
    another key does not."""
    key, before = make_test_recipient("Felles print and post")
    renewed = self_signed_certificate(key, "Felles print and post")
    renewed_pem = renewed.public_bytes(serialization.Encoding.PEM).decode()
    address = PostalAddress("Kari Nordmann", "Storgata 1", "0155", "OSLO")
    content = L.LetterIn(recipient="x", title="Vedtak", main=L.Document("v.pdf", pdf("Hei")))
    sealed = cms.encrypt(L.package(content, "id-1", "NAV", address), cms.Recipient(before))
    made = printing.print_document(sealed, key, renewed_pem)
    opened = tmp_path / "renewed.pdf"
    opened.write_bytes(cms.decrypt(made, key, renewed))
    assert "Storgata 1" in pdf_text(opened, 1, 1) and "Hei" in pdf_text(opened, 2)
    foreign = cms.encrypt(
        L.package(content, "id-2", "NAV", address),
        cms.Recipient(make_test_recipient("Felles print and post")[1]),
    )
    with pytest.raises(printing.Unprintable):
        printing.print_document(foreign, key, renewed_pem)


@pytest.fixture
async def own_country(
    tmp_path: Path,
) -> AsyncIterator[tuple[Settings, Database, httpx.AsyncClient]]:
    """A database and data dir of its own, so the print queue holds only this test's
    letters while `felles mailbox print-queue` works through all of it."""
    with scratch_database(tmp_path, "print") as url:
        conf = Settings(
            env=Environment.test,
            data_dir=tmp_path / "var",
            database_url=url,
            base_url="http://testserver",
            demo_persons=DEMO_PERSONS,
            demo_seed=DEMO_SEED,
        )
        database = Database(conf.resolved_database_url)
        app = create_app(conf)
        try:
            from felles.demo.service import seed_if_empty

            await database.upgrade()
            await seed_if_empty(database, persons=DEMO_PERSONS, seed=DEMO_SEED)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield conf, database, c
        finally:
            await app.state.db.dispose()
            await database.dispose()


async def test_the_demo_print_provider_prints_the_queue(
    own_country: tuple[Settings, Database, httpx.AsyncClient], tmp_path: Path
) -> None:
    conf, database, http = own_country
    who = await demo_people(database)
    nav = await sender(database, http)
    mine = {}
    for kind in ("reserved", "unregistered"):
        sent = await http.post(LETTERS, json=letter(who[kind], f"Brev til {kind}"), headers=nav)
        assert sent.json()["channel"] == "print"
        mine[sent.json()["id"]] = kind
    digital = await http.post(LETTERS, json=letter(who["felles"]), headers=nav)
    assert digital.json()["channel"] == "digital"
    # One letter sealed to a certificate whose key the print queue does not have.
    stray = (await http.post(LETTERS, json=letter(who["reserved"]), headers=nav)).json()["id"]
    old_certificate = make_test_recipient("An old print certificate")[1]
    async with database.session() as session:
        await session.execute(
            update(LetterContent)
            .where(LetterContent.letter_id == stray)
            .values(cms=cms.encrypt(pdf("Old"), cms.Recipient(old_certificate)))
        )
    out = tmp_path / "printed"

    done = run_felles(conf, "mailbox", "print-queue", "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert "Wrote 2 PDF(s)" in done.stderr and f"Could not print {stray}" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.pdf" for i in mine)
    for letter_id, kind in mine.items():
        first_page = pdf_text(out / f"{letter_id}.pdf", 1, 1)
        for line in await postal_lines(database, who[kind]):
            assert line in first_page
        assert f"Brev til {kind}" in pdf_text(out / f"{letter_id}.pdf", 2)
    provider = await print_provider(database, http)
    assert {q["id"] for q in await queued(http, provider)} == {*mine, stray}  # none confirmed

    # The stray one handled some other way, the rest are printed and confirmed.
    stray_done = await http.post(f"{PRINT}/letters/{stray}/printed", headers=provider)
    assert stray_done.status_code == 200
    done = run_felles(conf, "mailbox", "print-queue", "--out", str(out), "--confirm")
    assert done.returncode == 0, done.stderr
    assert "Confirmed 2 letter(s) printed" in done.stderr
    assert await queued(http, provider) == []
    for letter_id in mine:
        status = (await http.get(f"{LETTERS}/{letter_id}", headers=nav)).json()
        assert status["status"] == "printed"
        assert await printed_events(database, letter_id) == 1

    # Anywhere without the print provider's key it says so, and never makes one up.
    elsewhere = tmp_path / "elsewhere"
    done = run_felles(
        conf, "mailbox", "print-queue", "--out", str(out), FELLES_DATA_DIR=str(elsewhere)
    )
    assert done.returncode == 1
    assert "No print provider key" in done.stderr and "Traceback" not in done.stderr
    assert not (elsewhere / "keys" / "mailbox-print.key").exists()
