"""The whole journey of a letter, with nothing of ours mocked: an agency's server sends it
over HTTP with a real machine token to the real `felles serve`; its mailbox worker
e-mails the person through a real SMTP server; the person follows the link in the
e-mail in real headless Chromium, logs in with TestID, opens the letter and reads the
PDF; the agency then sees "opened". A reserved person's letter goes to the print queue,
where the print provider finds it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.events.models import OutboxEvent
from felles.mailbox.letters_api import SEND_SCOPE
from felles.registry import service as registry
from felles.registry.models import ContactInfo
from tests.conftest import serving
from tests.mailbox.mail import LETTERS, demo_people, letter
from tests.notifications.test_notifications import SmtpSink
from tests.portal.agencies import machine_token
from tests.web.browser import Site, assert_page_passes, browser_fixture, log_in_with_testid

pytestmark = pytest.mark.browser
browser = browser_fixture()
MARKER = "Innvilget-bostotte-7Q"  # only inside the PDF


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def mail_server(settings: Settings, db: Database, smtp: SmtpSink) -> Iterator[str]:
    """`felles serve` whose mailbox worker sends notifications through the SMTP sink."""
    with serving(settings, FELLES_SMTP_URL=smtp.url, FELLES_MAILBOX_SECONDS="0.3") as url:
        yield url


@pytest.fixture(scope="module")
async def site(browser, mail_server: str) -> AsyncIterator[Site]:  # type: ignore[no-untyped-def]
    shared = Site(browser=browser, base_url=mail_server)
    yield shared
    await shared.close()


async def wait_for_mail(smtp: SmtpSink, address: str, limit_s: float = 30) -> str:
    deadline = time.monotonic() + limit_s
    while not (texts := smtp.texts_to(address)):
        assert time.monotonic() < deadline, f"no e-mail to {address} in {limit_s} s"
        await asyncio.sleep(0.2)
    return texts[-1]


async def test_a_letter_from_an_agency_to_a_person_who_opens_it(
    site: Site, mail_server: str, db: Database, smtp: SmtpSink
) -> None:
    who = await demo_people(db)
    async with db.session() as session:
        nav = await registry.get_agency(session, "nav")
        email = await session.scalar(
            select(ContactInfo.email).where(ContactInfo.pid == who["felles"])
        )
    assert email
    async with httpx.AsyncClient(base_url=mail_server, timeout=30) as agency:
        token = await machine_token(db, agency, nav.orgnr, SEND_SCOPE, issuer=mail_server)
        headers = {"authorization": f"Bearer {token}", "idempotency-key": "journey-1"}
        sent = await agency.post(
            LETTERS,
            json=letter(who["felles"], MARKER, title="Svar på søknad om bostøtte"),
            headers=headers,
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["channel"] == "digital"
        letter_id = sent.json()["id"]

        # The e-mail: who it is from and where to read it, never what it says. (Other
        # tests' letters to this person may be notified first: wait for this one's.)
        deadline = time.monotonic() + 30
        while (await agency.get(f"{LETTERS}/{letter_id}", headers=headers)).json()[
            "notified_at"
        ] is None:
            assert time.monotonic() < deadline, "the letter was not notified in 30 s"
            await asyncio.sleep(0.2)
        await wait_for_mail(smtp, email)
        texts = smtp.texts_to(email)
        assert all(MARKER not in t and "bostøtte" not in t for t in texts)
        text = next(t for t in reversed(texts) if nav.name("nb") in t or nav.name("en") in t)
        link = re.search(r"https?://\S+/mailbox\S*", text)
        assert link, text

        # The person follows the link, logs in with TestID and opens the letter.
        context = await site.new_context(viewport={"width": 320, "height": 800})
        try:
            page = await context.new_page()
            await page.goto(link.group(0).replace("http://testserver", mail_server))
            await log_in_with_testid(page, who["felles"], "**/mailbox**")
            await assert_page_passes(page, "the inbox after the e-mail's link", 320)
            await page.click(f"a[href='/mailbox/letters/{letter_id}']")
            await page.wait_for_url(f"**/mailbox/letters/{letter_id}")
            await assert_page_passes(page, "the letter", 320)
            assert "Svar på søknad om bostøtte" in await page.inner_text("main")
            download = page.locator("a[href*='/documents/']").first
            document = await page.request.get(
                mail_server + (await download.get_attribute("href") or "")
            )
            assert document.status == 200
            assert MARKER.encode() in await document.body()
        finally:
            await context.close()

        # The sender sees that it was opened, and hears it as an event.
        status = await agency.get(f"{LETTERS}/{letter_id}", headers=headers)
        assert status.json()["status"] == "opened", status.json()
        assert status.json()["notified_at"] is not None
    async with db.session() as session:
        opened = await session.scalars(
            select(OutboxEvent.type).where(OutboxEvent.subject == letter_id)
        )
        assert list(opened).count("no.felles.mailbox.letter.opened") == 1


async def test_a_reserved_persons_letter_goes_to_the_print_queue(
    mail_server: str, db: Database
) -> None:
    who = await demo_people(db)
    async with db.session() as session:
        nav = (await registry.get_agency(session, "nav")).orgnr
        digdir = (await registry.get_agency(session, "digdir")).orgnr
    async with httpx.AsyncClient(base_url=mail_server, timeout=30) as http:
        send = await machine_token(db, http, nav, SEND_SCOPE, issuer=mail_server)
        sent = await http.post(
            LETTERS,
            json=letter(who["reserved"], MARKER),
            headers={"authorization": f"Bearer {send}"},
        )
        assert sent.status_code == 201, sent.text
        assert (sent.json()["channel"], sent.json()["reason"]) == ("print", "reserved")
        printer = await machine_token(db, http, digdir, "felles:mailbox.print", issuer=mail_server)
        queue, after = [], None
        while True:
            page = await http.get(
                "/api/mailbox/v1/print/letters",
                params={"limit": 1000, **({"after": after} if after else {})},
                headers={"authorization": f"Bearer {printer}"},
            )
            assert page.status_code == 200, page.text
            queue += [item["id"] for item in page.json()["letters"]]
            after = page.json().get("next")
            if not after:
                break
        assert sent.json()["id"] in queue
