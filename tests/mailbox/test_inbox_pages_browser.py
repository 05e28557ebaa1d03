"""The digital mailbox in a real browser against the real `felles serve`: logged in through
the real login flow (portal → login service → TestID → back), in all three languages, at
320 px and at desktop width; axe finds no WCAG 2.1 AA violation and nothing scrolls
sideways on the inbox, a search with no hits, the archive, a letter and "delete?"."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page

from felles.db import Database
from felles.mailbox import inbox
from tests.mailbox.mail import LETTERS, letter, pdf, sender
from tests.mailbox.test_inbox_pages import felles_people
from tests.web.browser import NARROW, PAGE_LANGUAGES, ConsoleLog, Site, assert_page_passes_at_widths
from tests.web.browser import log_in as browser_log_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
async def mail(app: Any, db: Database) -> dict[str, str]:
    """A person with letters in Felles' mailbox: one with a long title and an attachment
    with a long file name, a sensitive one, and one in the archive."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        me = (await felles_people(db))[-1]
        nav = await sender(db, client)
        long_one = letter(
            me,
            title="Vedtak om arbeidsavklaringspenger med et ganske langt navn uten forkortelser",
        )
        long_one["attachments"] = [
            {
                "name": "vedlegg-med-et-svært-langt-filnavn-uten-mellomrom-2027.pdf",
                "content_base64": base64.b64encode(pdf("Vedlegg")).decode(),
            }
        ]
        sent = await client.post(LETTERS, json=long_one, headers=nav)
        sensitive = await client.post(
            LETTERS,
            json=letter(me, title="Helseopplysninger", sensitivity="sensitive"),
            headers=await sender(db, client, "skatteetaten"),
        )
        archived = await client.post(LETTERS, json=letter(me, title="Gammelt brev"), headers=nav)
        for answer in (sent, sensitive, archived):
            assert answer.status_code == 201, answer.text
    async with db.session() as session:
        await inbox.move(session, me, archived.json()["id"], inbox.Folder.archive)
    return {"pid": me, "letter": sent.json()["id"], "sensitive": sensitive.json()["id"]}


async def check(page: Page, console: ConsoleLog, where: str) -> None:
    await assert_page_passes_at_widths(page, where)
    assert console.unexpected_errors() == [], console.errors


async def log_in(site: Site, context: BrowserContext, pid: str) -> None:
    await browser_log_in(site, context, pid, "/mailbox")


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_mailbox_pages(site: Site, mail: dict[str, str], lang: str) -> None:
    context = await site.new_context()
    try:
        setup = await context.new_page()
        await setup.goto(site.url(f"/language/{lang}?next=/"))
        await setup.close()
        await log_in(site, context, mail["pid"])
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        await page.set_viewport_size({"width": NARROW, "height": 800})

        await page.goto(site.url("/mailbox"))
        assert await page.locator(f"a[href='/mailbox/letters/{mail['letter']}']").count()
        assert await page.locator(f"a[href='/mailbox/letters/{mail['sensitive']}']").count()
        await check(page, console, f"mailbox [{lang}]")

        await page.goto(site.url("/mailbox?q=nothing-matches-this"))
        await check(page, console, f"mailbox, no matches [{lang}]")
        await page.goto(site.url("/mailbox?folder=archive"))
        assert await page.locator(".inbox-item").count() >= 1
        await check(page, console, f"archive [{lang}]")

        await page.goto(site.url(f"/mailbox/letters/{mail['letter']}"))
        assert await page.locator("a[href$='/documents/1/download']").count() == 1
        await check(page, console, f"letter [{lang}]")

        # Mark it unread from the letter: back in the inbox, with a notice.
        await page.click(f"form[action='/mailbox/letters/{mail['letter']}/unread'] button")
        await page.wait_for_load_state()
        assert "done=unread" in page.url, page.url
        assert await page.locator(".notice[role=status]").count() == 1
        await check(page, console, f"mailbox after an action [{lang}]")

        await page.goto(site.url(f"/mailbox/letters/{mail['letter']}/delete?back=/mailbox"))
        await check(page, console, f"delete? [{lang}]")
    finally:
        await context.close()
