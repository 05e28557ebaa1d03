"""Filling in forms in the portal over HTTP: log in through the login service, start a
service, answer page by page, check, send exactly once, and get a receipt."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from felles.config import Settings
from felles.db import Database
from felles.notifications.service import read_outbox
from felles.portal import attachments, receipts
from felles.portal.models import Draft, PendingPost, Submission
from felles.portal.references import normalise
from felles.portal.session import COOKIE
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Relation, Role
from tests.portal.flow import follow, log_in, post_form, use_app_as_provider


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    use_app_as_provider(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def parent_with_child(db: Database) -> str:
    """A parent whose e-mail address is in the contact register."""
    async with db.session() as session:
        return str(
            await session.scalar(
                select(Relation.pid)
                .join(ContactInfo, ContactInfo.pid == Relation.pid)
                .where(Relation.kind == "child", ContactInfo.email.is_not(None))
                .order_by(Relation.pid)
                .limit(1)
            )
        )


async def general_manager(db: Database) -> tuple[str, str]:
    async with db.session() as session:
        row = (
            await session.execute(
                select(Role.pid, Role.orgnr)
                .where(Role.code == "DAGL")
                .order_by(Role.orgnr)
                .limit(1)
            )
        ).one()
    return row[0], row[1]


def draft_path(response: httpx.Response) -> str:
    found = re.search(r"/portal/drafts/[A-Za-z0-9_-]+", str(response.url))
    assert found, response.url
    return found.group(0)


async def fill_kindergarten(http: httpx.AsyncClient) -> str:
    """Start the kindergarten service and answer every page; returns the draft's path."""
    start = await post_form(http, "/portal/services/kindergarten-place/start", {})
    assert start.status_code == 200 and "/pages/child" in str(start.url), start.text
    assert "born" in start.text or "født" in start.text
    draft = draft_path(start)
    for page, answers in (
        ("child", {"child": "0"}),
        ("start", {"start_date": "15.08.2027"}),
        ("hours", {"hours": "full"}),
        ("choices", {"first_choice": "Solsikken barnehage"}),
        ("needs", {"special_needs": "no"}),
    ):
        answer = await post_form(http, f"{draft}/pages/{page}", answers)
        assert answer.status_code == 200, (page, answer.text)
    assert str(answer.url).endswith("/attachments"), answer.url
    done = await post_form(http, f"{draft}/attachments", {"action": "done"})
    assert str(done.url).endswith("/check")
    return draft


async def test_kindergarten_from_login_to_receipt(
    http: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    pid = await parent_with_child(db)
    landed = await log_in(http, pid, next_path="/portal/services/kindergarten-place")
    assert landed.status_code == 200 and "Start" in landed.text
    draft = await fill_kindergarten(http)
    check = await http.get(f"{draft}/check")
    assert check.status_code == 200
    assert "2027-08-15" in check.text and "Solsikken barnehage" in check.text
    assert pid not in check.text, "no identity number on the page"
    sent = await post_form(http, f"{draft}/submit", {})
    assert sent.status_code == 200 and "/receipt" in str(sent.url)
    reference = re.search(r'class="reference"[^>]*>([^<]+)<', sent.text)
    assert reference and normalise(reference.group(1)) == reference.group(1)
    async with db.session() as session:
        row = await session.scalar(
            select(Submission).where(Submission.reference == reference.group(1))
        )
        assert row is not None
        assert row.data["child"].isdigit() and len(row.data["child"]) == 11
        assert row.data["start_date"] == "2027-08-15" and row.data["special_needs"] is False
        assert row.data["applicant_name"], "prefilled from the population register"
        log = await registry.data_access_log(session, pid)
    assert any(e.accessed_by == "portal:kindergarten-place" for e in log)
    # The receipt worker renders the PDF and e-mails the person that it arrived, never
    # what was in it.
    assert await receipts.generate_pending(db, settings=settings) >= 1
    mails = [
        m for m in read_outbox(settings.data_dir / "outbox") if reference.group(1) in m["text"]
    ]
    assert len(mails) == 1 and "Solsikken" not in mails[0]["text"]


async def test_a_double_click_sends_once(http: httpx.AsyncClient, db: Database) -> None:
    pid = await parent_with_child(db)
    await log_in(http, pid, next_path="/portal")
    draft = await fill_kindergarten(http)
    token = http.cookies["felles_csrf"]
    first, second = await asyncio.gather(
        http.post(f"{draft}/submit", data={"csrf_token": token}),
        http.post(f"{draft}/submit", data={"csrf_token": token}),
    )
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    draft_id = draft.rsplit("/", 1)[1]
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Submission).where(Submission.draft_id == draft_id)
        )
    assert count == 1


async def test_answers_are_checked_page_by_page(http: httpx.AsyncClient, db: Database) -> None:
    await log_in(http, await parent_with_child(db), next_path="/portal")
    start = await post_form(http, "/portal/services/kindergarten-place/start", {})
    draft = draft_path(start)
    missing = await post_form(http, f"{draft}/pages/child", {})
    assert missing.status_code == 200 and "error-summary" in missing.text
    assert 'href="#child"' in missing.text
    await post_form(http, f"{draft}/pages/child", {"child": "0"})
    bad_date = await post_form(http, f"{draft}/pages/start", {"start_date": "31.02.2027"})
    assert bad_date.status_code == 200 and 'aria-invalid="true"' in bad_date.text
    # A page posted out of order saves nothing and leads back to the page to do.
    skipped = await post_form(http, f"{draft}/pages/choices", {"first_choice": "X barnehage"})
    assert "/pages/start" in str(skipped.url)
    async with db.session() as session:
        row = await session.get(Draft, draft.rsplit("/", 1)[1])
        assert row is not None and "first_choice" not in row.data
    # A condition: the details page is shown only for "yes".
    for page, answers in (
        ("start", {"start_date": "2027-08-15"}),
        ("hours", {"hours": "half"}),
        ("choices", {"first_choice": "Solsikken"}),
    ):
        await post_form(http, f"{draft}/pages/{page}", answers)
    yes = await post_form(http, f"{draft}/pages/needs", {"special_needs": "yes"})
    assert "/pages/needs-details" in str(yes.url)
    no = await post_form(http, f"{draft}/pages/needs", {"special_needs": "no"})
    assert str(no.url).endswith("/attachments")


async def test_someone_elses_draft_is_not_found(http: httpx.AsyncClient, db: Database) -> None:
    await log_in(http, await parent_with_child(db), next_path="/portal")
    start = await post_form(http, "/portal/services/kindergarten-place/start", {})
    draft = draft_path(start)
    async with db.session() as session:
        other = (await registry.list_people(session, limit=3))[2].pid
    transport = httpx.ASGITransport(app=http._transport.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
        await log_in(stranger, other, next_path="/portal")
        seen = await stranger.get(f"{draft}/pages/child")
        random = await stranger.get("/portal/drafts/AAAAAAAAAAAAAAAAAAAAAA/pages/child")
        tampered = await stranger.get(f"{draft}x/pages/child")
    assert seen.status_code == random.status_code == tampered.status_code == 404
    assert seen.text.replace(draft, "").count("We could not find") == random.text.count(
        "We could not find"
    )


async def test_a_page_posted_after_the_session_ended_is_kept(
    http: httpx.AsyncClient, db: Database
) -> None:
    pid = await parent_with_child(db)
    await log_in(http, pid, next_path="/portal")
    start = await post_form(http, "/portal/services/kindergarten-place/start", {})
    draft = draft_path(start)
    http.cookies.delete(COOKIE)
    token = http.cookies["felles_csrf"]
    posted = await http.post(f"{draft}/pages/child", data={"child": "0", "csrf_token": token})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/portal/login")
    async with db.session() as session:
        kept = await session.scalar(select(func.count()).select_from(PendingPost))
    assert kept and kept >= 1
    # Logging in again (here the single sign-on session is still alive, so without
    # pages) applies what was posted, and the form goes on from there.
    landed = await follow(http, await http.get(posted.headers["location"]))
    assert "/pages/start" in str(landed.url), landed.url
    async with db.session() as session:
        row = await session.get(Draft, draft.rsplit("/", 1)[1])
        assert row is not None and len(row.data["child"]) == 11


async def test_a_business_service_needs_a_role(http: httpx.AsyncClient, db: Database) -> None:
    pid = await parent_with_child(db)
    await log_in(http, pid, next_path="/portal")
    page = await http.get("/portal/services/vat-return")
    assert page.status_code == 200 and "for businesses" in page.text
    dagl, orgnr = await general_manager(db)
    transport = httpx.ASGITransport(app=http._transport.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as manager:
        await log_in(manager, dagl, next_path="/portal")
        chosen = await post_form(
            manager,
            "/portal/party",
            {"party": f"organisation:{orgnr}", "next": "/portal/services/vat-return"},
        )
        assert chosen.status_code == 200 and "Start" in chosen.text
        start = await post_form(manager, "/portal/services/vat-return/start", {})
        draft = draft_path(start)
        await post_form(manager, f"{draft}/pages/period", {"period": "2026-5"})
        rows = "\n".join(f"Sale {i}\t{1000 + i}\t25" for i in range(200))
        pasted = await post_form(
            manager, f"{draft}/pages/lines", {"action": "paste", "paste": rows}
        )
        assert pasted.status_code == 200 and "200" in pasted.text
        bad = await post_form(
            manager,
            f"{draft}/pages/lines",
            {"action": "paste", "paste": "x\tnot a number\t25\ny\t5\t7"},
        )
        assert bad.status_code == 200 and "Line 1" in bad.text and "Line 2" in bad.text
        done = await post_form(manager, f"{draft}/pages/lines", {"action": "continue"})
        assert "/pages/comment" in str(done.url)
        await post_form(manager, f"{draft}/pages/comment", {})
        sent = await post_form(manager, f"{draft}/submit", {})
        assert sent.status_code == 200 and "/receipt" in str(sent.url)
    async with db.session() as session:
        row = await session.scalar(
            select(Submission).where(Submission.draft_id == draft.rsplit("/", 1)[1])
        )
        assert row is not None and row.party_id == orgnr and len(row.data["lines"]) == 200
        assert row.data["business_orgnr"] == orgnr


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


async def upload(http: httpx.AsyncClient, draft: str, name: str, content: bytes) -> httpx.Response:
    response = await http.post(
        f"{draft}/attachments",
        data={"action": "add", "csrf_token": http.cookies["felles_csrf"]},
        files={"file": (name, content, "application/pdf")},
    )
    return await follow(http, response)


async def test_attachments_are_checked_and_sent_along(
    http: httpx.AsyncClient, db: Database
) -> None:
    await log_in(http, await parent_with_child(db), next_path="/portal")
    start = await post_form(http, "/portal/services/kindergarten-place/start", {})
    draft = draft_path(start)
    early = await http.get(f"{draft}/attachments")
    assert "/pages/child" in early.headers["location"], "files come after the pages"
    for page, answers in (
        ("child", {"child": "0"}),
        ("start", {"start_date": "2027-08-15"}),
        ("hours", {"hours": "full"}),
        ("choices", {"first_choice": "Solsikken"}),
        ("needs", {"special_needs": "no"}),
    ):
        await post_form(http, f"{draft}/pages/{page}", answers)
    kept = await upload(http, draft, "legeerklæring.pdf", PDF)
    assert kept.status_code == 200 and "legeerklæring.pdf" in kept.text
    for name, content, words in (
        ("program.pdf", b"MZ\x90\x00" + b"\x00" * 100, ("PDF", "JPEG")),
        ("notes.txt", b"plain words", ("PDF",)),
        ("virus.pdf", PDF + EICAR, ("virus",)),
        ("huge.pdf", PDF + b"0" * 5_000_001, ("5",)),
    ):
        refused = await upload(http, draft, name, content)
        assert refused.status_code == 200 and "error-summary" in refused.text, name
        assert all(w in refused.text for w in words), (name, refused.text[:2000])
        assert name not in refused.text.split("error-summary")[0], "a refused file is not kept"
    check = await post_form(http, f"{draft}/attachments", {"action": "done"})
    assert "legeerklæring.pdf" in check.text
    sent = await post_form(http, f"{draft}/submit", {})
    assert "/receipt" in str(sent.url)
    async with db.session() as session:
        row = await session.scalar(
            select(Submission).where(Submission.draft_id == draft.rsplit("/", 1)[1])
        )
        assert row is not None
        files = await attachments.list_for_submission(session, row.id)
    assert [f.filename for f in files] == ["legeerklæring.pdf"]
    pdf = await http.get(str(sent.url).replace("/receipt", "/receipt.pdf"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


async def test_someone_elses_submission_is_not_found(http: httpx.AsyncClient, db: Database) -> None:
    pid = await parent_with_child(db)
    await log_in(http, pid, next_path="/portal")
    draft = await fill_kindergarten(http)
    sent = await post_form(http, f"{draft}/submit", {})
    receipt_path = sent.url.path
    transport = httpx.ASGITransport(app=http._transport.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
        async with db.session() as session:
            other = (await registry.list_people(session, limit=4))[3].pid
        await log_in(stranger, other, next_path="/portal")
        theirs = await stranger.get(receipt_path)
        pdf = await stranger.get(receipt_path + ".pdf")
        random = await stranger.get(
            "/portal/submissions/00000000-0000-4000-8000-000000000000/receipt"
        )
    assert theirs.status_code == pdf.status_code == random.status_code == 404
    assert theirs.text == random.text.replace(random.url.path, theirs.url.path) or (
        "We could not find" in theirs.text and "We could not find" in random.text
    )
