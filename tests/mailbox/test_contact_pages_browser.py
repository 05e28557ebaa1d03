"""The contact pages in a real browser against the real `felles serve`, logged in through
the real login flow (portal → login service → TestID → back): changing the mobile number
with the code from the dev outbox at 320 px in bokmål, and every page in all three
languages at 320 px and at desktop width. axe finds no WCAG 2.1 AA violation, nothing
scrolls sideways, and the content security policy holds.

The file's name sorts it after test_inbox_pages.py on purpose: the live server shares the
test database and registers the portal's login client with its own address, after which
in-process logins of the session's app (which checked its registration once) are refused
until the app registers again. So tests that log in in-process must run before the live
server starts (tests/portal/test_form_flow.py, run after tests/mailbox, meets this too).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from felles.config import Settings
from felles.db import Database
from felles.mailbox import contact
from tests.mailbox.test_contact_pages import new_person, sent_code, unique_email, unique_mobile
from tests.web.browser import (
    NARROW,
    PAGE_LANGUAGES,
    WIDTHS,
    ConsoleLog,
    Site,
    assert_page_passes_at_widths,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def outbox(settings: Settings) -> Path:
    return settings.data_dir / "outbox"


async def person(db: Database) -> str:
    """Someone with a digital mailbox who last confirmed their details long ago."""
    return await new_person(
        db,
        given="Bjørg Kristin",
        family="Aasen-Løvø",
        email=unique_email("bjorg.kristin.aasen-lovo.with.a.long.address"),
        mobile="+47 91234567",
        confirmed_on=contact.today() - timedelta(days=500),
        mailbox="felles",
    )


async def logged_in_page(site: Site, lang: str, width: int, pid: str) -> tuple[Page, Any]:
    """A new context in `lang`, logged in as `pid` through TestID, on the contact page."""
    context = await site.new_context()
    setup = await context.new_page()
    await setup.goto(site.url(f"/language/{lang}?next=/"))
    await setup.goto(site.url("/portal/login?next=/contact"))
    if "/login/testid" not in setup.url:
        await setup.click("a.method-link[href^='/login/testid']")
    await setup.fill("#pid", pid)
    await setup.click("form[action='/login/testid'] button[type=submit]")
    await setup.wait_for_url("**/contact", timeout=15_000)
    await setup.close()
    page = await context.new_page()
    console = ConsoleLog.attach(page)
    await page.set_viewport_size({"width": width, "height": 800})
    return page, (context, console)


async def check(
    page: Page, console: ConsoleLog, where: str, widths: tuple[int, ...] = WIDTHS
) -> None:
    await assert_page_passes_at_widths(page, where, widths)
    # A form with mistakes is answered 400 on purpose; the browser logs that status.
    assert console.unexpected_errors(lambda e: "status of 400" in e) == [], console.errors


async def test_change_mobile_with_the_code_at_320px_in_bokmal(
    site: Site, db: Database, outbox: Path
) -> None:
    pid = await person(db)
    page, (context, console) = await logged_in_page(site, "nb", 320, pid)
    context: BrowserContext
    try:
        await page.goto(site.url("/contact"))
        assert await page.locator("h1").inner_text() == "Kontaktopplysningene dine"
        assert await page.locator(".confirm-panel").count() == 1  # "are these still right?"
        await check(page, console, "overview [nb]", (NARROW,))

        await page.click("a[href='/contact/mobile']")
        assert page.url.endswith("/contact/mobile")
        await check(page, console, "change mobile [nb]", (NARROW,))
        await page.fill("#mobile", "22 12 34 56")
        await page.click("form[action='/contact/mobile'] button[type=submit]")
        assert await page.locator(".error-summary").count() == 1
        assert "begynner med 4 eller 9" in await page.locator(".error-summary").inner_text()
        await check(page, console, "change mobile with an error [nb]", (NARROW,))

        number = unique_mobile()
        await page.fill("#mobile", f"{number[:3]} {number[3:5]} {number[5:]}")
        await page.click("form[action='/contact/mobile'] button[type=submit]")
        assert page.url.endswith("/contact/mobile/code")
        await check(page, console, "code [nb]", (NARROW,))

        await page.fill("#code", sent_code(outbox, f"+47 {number}"))
        await page.click("form[action='/contact/mobile/code'] button[type=submit]")
        assert re.search(r"/contact\?done=mobile$", page.url), page.url
        assert "Det nye mobilnummeret ditt er lagret." in await page.locator("main").inner_text()
        assert f"+47 {number}" in await page.locator("main").inner_text()
        await check(page, console, "overview after the change [nb]", (NARROW,))
    finally:
        await context.close()


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_contact_pages(site: Site, db: Database, lang: str) -> None:
    pid = await person(db)
    page, (context, console) = await logged_in_page(site, lang, NARROW, pid)
    try:
        where = f"[{lang}]"
        await page.goto(site.url("/contact"))
        await check(page, console, f"overview {where}")

        await page.goto(site.url("/contact/email"))
        await check(page, console, f"change e-mail {where}")
        await page.fill("#email", "not an address")
        await page.click("form[action='/contact/email'] button[type=submit]")
        assert await page.locator(".error-summary").count() == 1
        await check(page, console, f"change e-mail with an error {where}")
        await page.fill("#email", unique_email("a.rather.long.new.address.for.a.narrow.screen"))
        await page.click("form[action='/contact/email'] button[type=submit]")
        assert page.url.endswith("/contact/email/code")
        await page.fill("#code", "000")
        await page.click("form[action='/contact/email/code'] button[type=submit]")
        assert await page.locator(".error-summary").count() == 1
        await check(page, console, f"code with an error {where}")

        await page.goto(site.url("/contact/mobile/remove"))
        await check(page, console, f"remove mobile {where}")
        await page.click("form[action='/contact/mobile/remove'] button[type=submit]")
        await page.goto(site.url("/contact/email/remove"))
        assert await page.locator("form[action='/contact/email/remove']").count() == 0
        await check(page, console, f"remove e-mail, refused {where}")

        await page.goto(site.url("/contact/reservation"))
        await check(page, console, f"reserve {where}")
        await page.click("form[action='/contact/reservation'] button[type=submit]")
        assert "done=reserved" in page.url
        await check(page, console, f"overview, reserved {where}")
        await page.goto(site.url("/contact/reservation"))
        await check(page, console, f"withdraw {where}")

        await page.goto(site.url("/contact/mailbox"))
        await check(page, console, f"mailbox {where}")
        await page.check("input[name=provider][value=eboks]")
        await page.click("form[action='/contact/mailbox'] button[type=submit]")
        assert "done=mailbox" in page.url

        await page.goto(site.url("/contact/history"))
        assert await page.locator(".data-use").count() >= 3
        await check(page, console, f"history {where}")
    finally:
        await context.close()
