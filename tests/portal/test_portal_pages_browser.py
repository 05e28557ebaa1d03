"""The portal's inbox, a message, the catalogue, "who has used my data" and access for
others in a real browser against the real `felles serve`: logged in through the real login
flow (portal → login service → TestID → back), in all three languages, at 320 px and at
desktop width; axe finds no WCAG 2.1 AA violation and nothing scrolls sideways."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

import pytest
from playwright.async_api import BrowserContext, Page
from sqlalchemy import select

from felles.db import Database
from felles.portal.models import Attachment, Message, MessageKind, PartyKind
from felles.registry import service as registry
from felles.registry.models import Role
from tests.web.browser import NARROW, PAGE_LANGUAGES, ConsoleLog, Site, assert_page_passes_at_widths
from tests.web.browser import log_in as browser_log_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
async def manager(db: Database) -> dict[str, str]:
    """A general manager with a message (one attachment, to confirm) in their own inbox."""
    async with db.session() as session:
        role = await session.scalar(select(Role).where(Role.code == "DAGL").limit(1))
        assert role is not None
        org = await registry.get_organisation(session, role.orgnr)
        tax = await registry.get_agency(session, "skatteetaten")
        message_id = str(uuid.uuid4())
        session.add(
            Message(
                id=message_id,
                party_kind=PartyKind.person.value,
                party_id=role.pid,
                kind=MessageKind.decision.value,
                sender_orgnr=tax.orgnr,
                title="Vedtak om skattekort for 2027 med et ganske langt navn",
                body="Vi har fastsatt skattekortet ditt.\n\nDu kan lese mer i vedlegget.",
                sender_reference="2027/12345-ABCDEFGHIJKLMNOP",
                confirm_required=True,
                created_at=datetime.now(UTC),
            )
        )
        await session.flush()
        session.add(
            Attachment(
                id=secrets.token_hex(16),
                message_id=message_id,
                filename="skattekort-2027-med-et-langt-filnavn-uten-mellomrom.pdf",
                content_type="application/pdf",
                size=3,
                sha256=hashlib.sha256(b"pdf").hexdigest(),
                content=b"pdf",
                scan_status="clean",
                created_at=datetime.now(UTC),
            )
        )
        await registry.get_person(
            session, role.pid, registry.Access("portal:kindergarten-place", "prefill")
        )
    return {"pid": role.pid, "orgnr": org.orgnr, "message": message_id}


async def check(page: Page, console: ConsoleLog, where: str) -> None:
    await assert_page_passes_at_widths(page, where)
    # A form with mistakes is answered 400 on purpose; the browser logs that status.
    assert console.unexpected_errors(lambda e: "status of 400" in e) == [], console.errors


async def log_in(site: Site, context: BrowserContext, pid: str) -> None:
    await browser_log_in(site, context, pid, "/portal/inbox")


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_portal_pages(site: Site, manager: dict[str, str], lang: str) -> None:
    context = await site.new_context()
    try:
        setup = await context.new_page()
        await setup.goto(site.url(f"/language/{lang}?next=/"))
        await setup.close()
        await log_in(site, context, manager["pid"])
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        await page.set_viewport_size({"width": NARROW, "height": 800})

        await page.goto(site.url("/portal/services"))
        await check(page, console, f"catalogue [{lang}]")
        await page.fill("#q", "xyzzy")
        await page.click("form[role=search] button[type=submit]")
        await check(page, console, f"catalogue, no hits [{lang}]")

        await page.goto(site.url("/portal/inbox"))
        assert await page.locator(f"a[href='/portal/inbox/messages/{manager['message']}']").count()
        await check(page, console, f"inbox [{lang}]")
        await page.goto(site.url("/portal/inbox?q=nothing-matches-this&show=messages&unread=1"))
        await check(page, console, f"inbox, no matches [{lang}]")

        await page.goto(site.url(f"/portal/inbox/messages/{manager['message']}"))
        await check(page, console, f"message [{lang}]")

        await page.goto(site.url("/portal/my-data"))
        assert await page.locator(".data-use").count() > 0
        await check(page, console, f"my data [{lang}]")

        await page.goto(site.url("/portal/delegations"))
        await check(page, console, f"delegations, as yourself [{lang}]")
        await page.goto(site.url("/portal/party?next=/portal/delegations"))
        await page.check(f"input[name=party][value='organisation:{manager['orgnr']}']")
        await page.click("form[action='/portal/party'] button[type=submit]")
        await page.wait_for_load_state()
        assert page.url.endswith("/portal/delegations"), (page.url, await page.content())
        await check(page, console, f"delegations [{lang}]")
        await page.fill("#pid", "12345678901")
        await page.click("form[action='/portal/delegations'] button[type=submit]")
        assert await page.locator(".error-summary").count() == 1
        await check(page, console, f"delegations with errors [{lang}]")
    finally:
        await context.close()
