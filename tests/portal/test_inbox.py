"""The inbox over HTTP: one list of drafts, submissions and agencies' messages for the party
acting, search and filters in the address, read/unread, confirming once, attachments, and
"not found" for anything of someone else's."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from felles.db import Database
from felles.portal.models import (
    Attachment,
    Draft,
    Message,
    MessageKind,
    PartyKind,
    Submission,
    SubmissionStatus,
)
from felles.portal.references import new_reference
from felles.portal.session import Party
from felles.registry import service as registry
from felles.registry.models import Role
from tests.portal.conftest import csrf, logged_in

NOW = datetime.now(UTC)


async def people(db: Database, count: int, skip: int = 0) -> list[tuple[str, str]]:
    async with db.session() as session:
        found = await registry.list_people(session, limit=count + skip)
    return [(p.pid, p.full_name) for p in found[skip:]]


async def agency_orgnr(db: Database, slug: str) -> str:
    async with db.session() as session:
        return (await registry.get_agency(session, slug)).orgnr


async def add_message(
    db: Database,
    party: Party,
    sender: str,
    title: str,
    *,
    body: str = "Hello.\n\nSecond paragraph.",
    kind: MessageKind = MessageKind.correspondence,
    confirm: bool = False,
    submission_id: str | None = None,
    at: datetime | None = None,
    read: bool = False,
) -> str:
    ident = str(uuid.uuid4())
    created = at or datetime.now(UTC)
    async with db.session() as session:
        session.add(
            Message(
                id=ident,
                party_kind=party.kind.value,
                party_id=party.id,
                kind=kind.value,
                sender_orgnr=sender,
                submission_id=submission_id,
                title=title,
                body=body,
                confirm_required=confirm,
                created_at=created,
                read_at=created if read else None,
            )
        )
    return ident


async def add_draft(db: Database, party: Party, pid: str, code: str = "change-of-address") -> str:
    ident = secrets.token_urlsafe(16)
    async with db.session() as session:
        session.add(
            Draft(
                id=ident,
                service_code=code,
                service_version=1,
                party_kind=party.kind.value,
                party_id=party.id,
                created_by=pid,
                data={},
                prefilled={},
                pages_done=[],
                revision=0,
                created_at=NOW,
                updated_at=datetime.now(UTC),
            )
        )
    return ident


async def add_submission(
    db: Database,
    party: Party,
    pid: str,
    owner: str,
    code: str = "change-of-address",
    status: SubmissionStatus = SubmissionStatus.received,
) -> Submission:
    """A submission with its receipt copy in the inbox, as forms.submit makes them."""
    at = datetime.now(UTC)
    row = Submission(
        id=str(uuid.uuid4()),
        reference=new_reference(),
        draft_id=secrets.token_urlsafe(16),
        service_code=code,
        service_version=1,
        owner_orgnr=owner,
        party_kind=party.kind.value,
        party_id=party.id,
        submitted_by=pid,
        data={},
        status=status.value,
        submitted_at=at,
    )
    async with db.session() as session:
        session.add(row)
        await session.flush()
        session.add(
            Message(
                id=str(uuid.uuid4()),
                party_kind=party.kind.value,
                party_id=party.id,
                kind=MessageKind.receipt.value,
                sender_orgnr=owner,
                submission_id=row.id,
                title="Kvittering " + row.reference,
                body="Receipt",
                created_at=at,
                read_at=at,
            )
        )
    return row


@pytest.fixture
async def two_people(db: Database) -> list[tuple[str, str]]:
    # Each test its own pair, far from what other tests use.
    skip = 150 + secrets.randbelow(100)
    return await people(db, 2, skip)


async def test_not_logged_in_goes_to_login(client: httpx.AsyncClient) -> None:
    for path in ("/portal/inbox", f"/portal/inbox/messages/{uuid.uuid4()}"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/portal/login?next=")


async def test_inbox_lists_drafts_submissions_and_messages_of_the_party_only(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, my_name), (other, _) = two_people
    mine = Party(PartyKind.person, me, my_name)
    theirs = Party(PartyKind.person, other, "Other")
    tax = await agency_orgnr(db, "skatteetaten")
    draft = await add_draft(db, mine, me)
    sent = await add_submission(db, mine, me, tax, status=SubmissionStatus.acknowledged)
    message = await add_message(db, mine, tax, "Your tax card is ready")
    hidden = await add_message(db, theirs, tax, "Not for you at all")
    hidden_draft = await add_draft(db, theirs, other)

    logged_in(client, app, me)
    answer = await client.get("/portal/inbox")
    assert answer.status_code == 200
    html = answer.text
    assert f"/portal/drafts/{draft}" in html
    assert f"/portal/submissions/{sent.id}/receipt" in html
    assert sent.reference in html
    assert "Received by the agency" in html
    assert f"/portal/inbox/messages/{message}" in html
    assert "Your tax card is ready" in html
    assert "Change of address" in html or "Report a move" in html or "Melde flytting" not in html
    # The receipt copy is folded into its submission, not listed again.
    assert f"Kvittering {sent.reference}" not in html
    assert hidden not in html and "Not for you at all" not in html
    assert hidden_draft not in html
    assert "1 unread message" in html


async def test_search_filters_and_paging(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, name), _ = two_people
    party = Party(PartyKind.person, me, name)
    tax = await agency_orgnr(db, "skatteetaten")
    oslo = await agency_orgnr(db, "oslo-kommune")
    word = "zebra" + secrets.token_hex(3)
    found = await add_message(db, party, tax, f"About the {word} permit", read=True)
    in_body = await add_message(db, party, oslo, "Other title", body=f"Text with {word.upper()}")
    other = await add_message(db, party, oslo, "Nothing to see")
    draft = await add_draft(db, party, me, "kindergarten-place")
    logged_in(client, app, me)

    html = (await client.get("/portal/inbox", params={"q": word})).text
    assert found in html and in_body in html and other not in html and draft not in html
    assert "2 matches" in html

    html = (await client.get("/portal/inbox", params={"q": "barnehage"})).text
    assert draft in html and found not in html

    html = (await client.get("/portal/inbox", params={"q": word, "unread": "1"})).text
    assert in_body in html and found not in html

    html = (await client.get("/portal/inbox", params={"show": "drafts"})).text
    assert draft in html and other not in html

    html = (await client.get("/portal/inbox", params={"show": "messages", "agency": oslo})).text
    assert other in html and in_body in html and found not in html and draft not in html

    html = (await client.get("/portal/inbox", params={"show": "sent", "q": word})).text
    assert "0 matches" in html and "Nothing in your inbox matches" in html

    # Nonsense in the address is read as "no filter", never an error page.
    answer = await client.get("/portal/inbox", params={"show": "x", "agency": "1", "page": "y"})
    assert answer.status_code == 200 and other in answer.text

    # 30 more messages: two pages of 25, newest first.
    page_word = "paging" + secrets.token_hex(3)
    base = datetime.now(UTC) - timedelta(days=1)
    ids = [
        await add_message(db, party, tax, f"{page_word} {i}", at=base + timedelta(minutes=i))
        for i in range(30)
    ]
    first = (await client.get("/portal/inbox", params={"q": page_word})).text
    assert "30 matches" in first and "page 1 of 2" in first
    assert first.index(ids[29]) < first.index(ids[28])
    assert ids[4] not in first and ids[5] in first
    assert f"q={page_word}&amp;page=2" in first
    second = (await client.get("/portal/inbox", params={"q": page_word, "page": "2"})).text
    assert ids[4] in second and ids[0] in second and ids[5] not in second


async def test_opening_marks_read_and_mark_as_unread(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, name), _ = two_people
    party = Party(PartyKind.person, me, name)
    tax = await agency_orgnr(db, "skatteetaten")
    ident = await add_message(db, party, tax, "Read me", body="First.\n\nSecond line\nwrapped.")
    logged_in(client, app, me)

    page = await client.get(f"/portal/inbox/messages/{ident}")
    assert page.status_code == 200
    assert "<h1" in page.text and "Read me" in page.text
    assert "Skatteetaten" in page.text or "Norwegian Tax Administration" in page.text
    assert page.text.count('<p class="ds-paragraph">First.</p>') == 1
    async with db.session() as session:
        assert (await session.get(Message, ident)).read_at is not None  # type: ignore[union-attr]

    token = await csrf(client)
    no_token = await client.post(f"/portal/inbox/messages/{ident}/unread")
    assert no_token.status_code == 403
    answer = await client.post(f"/portal/inbox/messages/{ident}/unread", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/inbox"
    async with db.session() as session:
        assert (await session.get(Message, ident)).read_at is None  # type: ignore[union-attr]


async def test_confirm_as_read_once(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, name), _ = two_people
    party = Party(PartyKind.person, me, name)
    tax = await agency_orgnr(db, "skatteetaten")
    ident = await add_message(db, party, tax, "Please confirm", confirm=True)
    logged_in(client, app, me)
    listed = (await client.get("/portal/inbox")).text
    assert "Confirm that you have read it" in listed
    page = (await client.get(f"/portal/inbox/messages/{ident}")).text
    assert "I confirm I have read this" in page

    token = await csrf(client)
    first = await client.post(f"/portal/inbox/messages/{ident}/confirm", data={"csrf_token": token})
    assert first.status_code == 303
    async with db.session() as session:
        row = await session.get(Message, ident)
        assert row is not None and row.confirmed_by == me and row.confirmed_at is not None
        confirmed_at = row.confirmed_at
    again = await client.post(f"/portal/inbox/messages/{ident}/confirm", data={"csrf_token": token})
    assert again.status_code == 303
    async with db.session() as session:
        row = await session.get(Message, ident)
        assert row is not None and row.confirmed_at == confirmed_at
    page = (await client.get(first.headers["location"])).text
    assert "I confirm I have read this" not in page
    assert "You confirmed that you had read this message on" in page


async def test_someone_elses_message_is_not_found_exactly_like_a_missing_one(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, _), (other, other_name) = two_people
    tax = await agency_orgnr(db, "skatteetaten")
    theirs = await add_message(db, Party(PartyKind.person, other, other_name), tax, "Private")
    async with db.session() as session:
        session.add(
            Attachment(
                id=secrets.token_hex(16),
                message_id=theirs,
                filename="a.txt",
                content_type="text/plain",
                size=2,
                sha256=hashlib.sha256(b"hi").hexdigest(),
                content=b"hi",
                scan_status="clean",
                created_at=NOW,
            )
        )
        attachment_id = await session.scalar(
            select(Attachment.id).where(Attachment.message_id == theirs)
        )
    logged_in(client, app, me)
    token = await csrf(client)
    answers = {
        "theirs": await client.get(f"/portal/inbox/messages/{theirs}"),
        "missing": await client.get(f"/portal/inbox/messages/{uuid.uuid4()}"),
    }
    assert {a.status_code for a in answers.values()} == {404}

    def strip(text: str, ident: str) -> str:
        # The CSRF token differs per response; the address is in the language links.
        text = text.replace(ident, "ID")
        return re.sub(r'name="csrf_token" value="[^"]*"', "", text)

    missing_id = str(answers["missing"].url).rsplit("/", 1)[-1]
    assert strip(answers["theirs"].text, theirs) == strip(answers["missing"].text, missing_id)
    attachment = await client.get(f"/portal/inbox/messages/{theirs}/attachments/{attachment_id}")
    assert attachment.status_code == 404 and attachment.text != "hi"
    for action in ("unread", "confirm"):
        answer = await client.post(
            f"/portal/inbox/messages/{theirs}/{action}", data={"csrf_token": token}
        )
        assert answer.status_code == 404
    async with db.session() as session:
        row = await session.get(Message, theirs)
        assert row is not None and row.read_at is None and row.confirmed_at is None


async def test_attachment_download(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    (me, name), _ = two_people
    tax = await agency_orgnr(db, "skatteetaten")
    ident = await add_message(db, Party(PartyKind.person, me, name), tax, "With a file")
    content = b"%PDF-1.7 not really"
    clean, infected = secrets.token_hex(16), secrets.token_hex(16)
    async with db.session() as session:
        for att_id, status, filename in (
            (clean, "clean", "vedtak æøå.pdf"),
            (infected, "infected", "bad.pdf"),
        ):
            session.add(
                Attachment(
                    id=att_id,
                    message_id=ident,
                    filename=filename,
                    content_type="application/pdf",
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    content=content,
                    scan_status=status,
                    created_at=NOW,
                )
            )
    logged_in(client, app, me)
    page = (await client.get(f"/portal/inbox/messages/{ident}")).text
    assert f"/portal/inbox/messages/{ident}/attachments/{clean}" in page
    assert f"/attachments/{infected}" not in page
    answer = await client.get(f"/portal/inbox/messages/{ident}/attachments/{clean}")
    assert answer.status_code == 200
    assert answer.content == content
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["x-content-type-options"] == "nosniff"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''vedtak%20%C3%A6%C3%B8%C3%A5.pdf" in disposition
    blocked = await client.get(f"/portal/inbox/messages/{ident}/attachments/{infected}")
    assert blocked.status_code == 404


async def test_business_inbox_needs_the_right_to_act_for_it(
    client: httpx.AsyncClient, app, db: Database, two_people: list[tuple[str, str]]
) -> None:
    async with db.session() as session:
        role = await session.scalar(select(Role).where(Role.code == "DAGL").limit(1))
        assert role is not None
        org = await registry.get_organisation(session, role.orgnr)
    business = Party(PartyKind.organisation, org.orgnr, org.name)
    tax = await agency_orgnr(db, "skatteetaten")
    ident = await add_message(db, business, tax, "For the business")
    logged_in(client, app, role.pid, business)
    assert "For the business" in (await client.get("/portal/inbox")).text
    assert (await client.get(f"/portal/inbox/messages/{ident}")).status_code == 200

    (stranger, _), _ = two_people
    async with db.session() as session:
        held = await session.scalar(
            select(Role.code).where(Role.pid == stranger, Role.orgnr == org.orgnr)
        )
    assert held is None
    logged_in(client, app, stranger, business)
    answer = await client.get("/portal/inbox")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/party")
    assert (await client.get(f"/portal/inbox/messages/{ident}")).status_code == 404
