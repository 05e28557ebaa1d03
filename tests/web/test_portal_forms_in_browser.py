"""Filling in a form in a real browser: log in with TestID through the portal, fill the
kindergarten form with a prefilled child, check the answers, send, see the receipt.
Every page passes axe (WCAG 2.1 AA) at 320 px and desktop width, in all three
languages; and the same journey works with JavaScript switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from felles.db import Database
from felles.portal.references import normalise
from felles.registry.models import ContactInfo, Relation, Role
from tests.portal.agencies import agency_auth
from tests.web.browser import (
    LANGUAGE_CODES,
    NARROW,
    PAGE_LANGUAGES,
    ConsoleLog,
    Site,
    assert_page_passes,
    assert_page_passes_at_widths,
)

pytestmark = pytest.mark.browser
CONTINUE = "form[action*='/pages/'] button[value=continue]"


async def check_page(page: Page, where: str, width: int) -> None:
    await assert_page_passes(page, where, width)


async def parents(db: Database, count: int) -> list[str]:
    async with db.session() as session:
        rows = await session.scalars(
            select(Relation.pid)
            .join(ContactInfo, ContactInfo.pid == Relation.pid)
            .where(Relation.kind == "child")
            .distinct()
            .order_by(Relation.pid)
            .limit(count)
        )
        return list(rows)


async def log_in(page: Page, site: Site, pid: str, next_path: str) -> None:
    await page.goto(site.url(f"/portal/login?next={next_path}"))
    if "/login/testid" not in page.url:
        await page.click("a.method-link[href^='/login/testid']")
    await page.fill("#pid", pid)
    await page.click("button[type=submit]")
    assert next_path in page.url, page.url


async def journey(page: Page, site: Site, pid: str, where: str, *, axe: bool = True) -> str:
    """From the service's start page to the receipt, every page checked at both widths;
    returns the reference number. (axe runs in the page's JavaScript: without JavaScript
    only the journey is checked.)"""

    async def check(page: Page, where: str) -> None:
        if axe:
            await assert_page_passes_at_widths(page, where)

    await log_in(page, site, pid, "/portal/services/kindergarten-place")
    await check(page, f"service start {where}")
    await page.click("button.button--start")
    assert "/pages/child" in page.url
    await check(page, f"child page {where}")
    await page.click(CONTINUE)  # nothing chosen: an error summary
    assert await page.locator(".error-summary").count() == 1
    await check(page, f"child page with an error {where}")
    await page.check("#child")
    await page.click(CONTINUE)
    await page.fill("#start_date", "15.08.2027")
    await check(page, f"start date page {where}")
    await page.click(CONTINUE)
    await page.check("#hours")
    await page.click(CONTINUE)
    await page.fill("#first_choice", "Solsikken barnehage")
    await check(page, f"two questions page {where}")
    await page.click(CONTINUE)
    await page.check("#special_needs-no")
    await page.click(CONTINUE)
    assert page.url.endswith("/attachments"), page.url
    await check(page, f"attachments {where}")
    await page.click("button[value=done]")
    assert page.url.endswith("/check"), page.url
    await check(page, f"check your answers {where}")
    assert "2027-08-15" in await page.content()
    await page.click("form[action$='/submit'] button")
    assert page.url.endswith("/receipt"), page.url
    await check(page, f"receipt {where}")
    reference = (await page.locator(".reference").inner_text()).strip()
    assert normalise(reference) == reference
    return reference


@asynccontextmanager
async def own_browser(
    site: Site, lang: str, width: int, **options: Any
) -> AsyncIterator[tuple[Page, ConsoleLog]]:
    """A context of its own (its own login), in `lang`, at this width."""
    context = await site.new_context(viewport={"width": width, "height": 800}, **options)
    try:
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        await page.goto(site.url(f"/language/{lang}?next=/portal"))
        yield page, console
    finally:
        await context.close()


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_fill_in_and_send(site: Site, db: Database, lang: str) -> None:
    pid = (await parents(db, 6))[LANGUAGE_CODES.index(lang) * 2]
    async with own_browser(site, lang, NARROW) as (page, console):
        await journey(page, site, pid, f"[{lang}]")
        assert console.unexpected_errors() == []
        # Sent is sent: going back to the form leads to the receipt, not a second copy.
        await page.go_back()
        await page.reload()
        assert "/receipt" in page.url, page.url


async def test_works_without_javascript(site: Site, db: Database) -> None:
    pid = (await parents(db, 7))[6]
    async with own_browser(site, "en", 1280, java_script_enabled=False) as (page, _console):
        assert await journey(page, site, pid, "[no JavaScript]", axe=False)


async def test_the_agency_fetches_it_and_answers_in_the_inbox(
    site: Site, db: Database, live_server: str
) -> None:
    """The issue's whole story: a person sends the kindergarten form in the browser; Oslo
    kommune's server fetches it over the API with a machine token and sends a decision;
    the person finds the decision in the inbox."""
    pid = (await parents(db, 8))[7]
    async with own_browser(site, "en", 1280) as (page, _console):
        reference = await journey(page, site, pid, "[agency story]", axe=False)
        async with httpx.AsyncClient(base_url=live_server, timeout=20) as http:
            oslo = await agency_auth(db, http, "oslo-kommune", issuer=live_server)
            listed = await http.get(
                "/api/portal/v1/submissions",
                params={"service_code": "kindergarten-place", "limit": 500},
                headers=oslo.headers,
            )
            assert listed.status_code == 200, listed.text
            [mine] = [s for s in listed.json()["items"] if s["reference"] == reference]
            fetched = await http.get(
                f"/api/portal/v1/submissions/{mine['id']}", headers=oslo.headers
            )
            assert fetched.json()["data"]["first_choice"] == "Solsikken barnehage"
            answered = await http.post(
                f"/api/portal/v1/submissions/{mine['id']}/messages",
                json={
                    "kind": "decision",
                    "title": "You have been offered a place",
                    "body": "Your child is offered a place at Solsikken barnehage from August.",
                },
                headers=oslo.headers,
            )
            assert answered.status_code == 201, answered.text
        await page.goto(site.url("/portal/inbox"))
        await check_page(page, "inbox with a decision [en]", 1280)
        assert "Apply for a kindergarten place" in await page.content(), "the sent form is listed"
        await page.click("text=You have been offered a place")
        assert "Solsikken barnehage from August" in await page.content()
        await check_page(page, "the decision [en]", 1280)


async def test_a_business_return_with_many_lines(site: Site, db: Database) -> None:
    """The general manager acts for the business and sends a VAT return of 200 pasted
    lines; someone without a role is told whom to ask. At 320 px, with axe."""
    async with db.session() as session:
        dagl, orgnr = (
            await session.execute(
                select(Role.pid, Role.orgnr)
                .where(Role.code == "DAGL")
                .order_by(Role.orgnr)
                .limit(1)
            )
        ).one()
    async with own_browser(site, "nn", 320) as (page, console):
        await log_in(page, site, dagl, "/portal/party")
        await check_page(page, "choose whom to act for [nn, 320px]", 320)
        await page.check(f"input[value='organisation:{orgnr}']")
        await page.click("form[action='/portal/party'] button[type=submit]")
        await page.goto(site.url("/portal/services/vat-return"))
        await page.click("button.button--start")
        await page.check("#period")
        await page.click(CONTINUE)
        assert "/pages/lines" in page.url
        await page.click("details.paste-rows summary")
        rows = "\n".join(f"Sal {i}\t{1000 + i}\t25" for i in range(200))
        await page.fill("#paste", rows)
        await page.click("button[value=paste]")
        # The answer is a new page, 200 rows long: wait until all of it has arrived.
        await expect(page.locator(".rows-table tbody tr")).to_have_count(200)
        await check_page(page, "200 lines [nn, 320px]", 320)
        await page.click(CONTINUE)
        await page.click(CONTINUE)  # no comment
        assert page.url.endswith("/check"), page.url
        await check_page(page, "check 200 lines [nn, 320px]", 320)
        await page.click("form[action$='/submit'] button")
        assert page.url.endswith("/receipt")
        assert console.unexpected_errors() == []
    async with db.session() as session:
        stranger = (
            await session.execute(
                select(Relation.pid).where(Relation.pid.not_in(select(Role.pid))).limit(1)
            )
        ).scalar_one()
    async with own_browser(site, "en", 320) as (page, _console):
        await log_in(page, site, stranger, "/portal/services/vat-return")
        text = await page.content()
        assert "for businesses" in text and "Choose whom you act for" in text
        await check_page(page, "a service for businesses only [en, 320px]", 320)
