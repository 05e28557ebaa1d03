"""The login service's pages in a real browser: axe (WCAG 2.1 AA) at 320 px and desktop
width, in all three languages, including the error states people meet."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import pytest
from playwright.async_api import Page

from felles.db import Database
from felles.identity import clients
from felles.registry import service as registry
from tests.web.browser import NARROW, PAGE_LANGUAGES, Site, assert_page_passes_at_widths

pytestmark = pytest.mark.browser


async def check(page: Page, where: str) -> None:
    await assert_page_passes_at_widths(page, where)


@pytest.fixture(scope="module")
async def client_id(db: Database, live_server: str) -> str:
    async with db.session() as session:
        client, _ = await clients.add_client(
            session,
            clients.NewClient(
                name="Skjemaportalen",
                redirect_uris=["https://service.example/callback"],
                scopes=["openid"],
            ),
        )
    return client.client_id


def authorize_url(site: Site, client_id: str, **extra: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": "https://service.example/callback",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "state": "s",
        **extra,
    }
    return site.url("/authorize?" + urlencode(params))


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_login_journey_pages(site: Site, client_id: str, db: Database, lang: str) -> None:
    async with db.session() as session:
        person = (await registry.list_people(session, limit=1))[0]
    async with site.page(lang, NARROW) as (page, _console):
        await page.goto(authorize_url(site, client_id, prompt="login"))
        assert "/login?auth=" in page.url
        await check(page, f"login chooser [{lang}]")

        await page.click("a.method-link[href^='/login/testid']")
        await check(page, f"TestID [{lang}]")

        await page.fill("#pid", "123")
        await page.click("button[type=submit]")
        assert await page.locator(".error-summary").count() == 1
        assert await page.get_attribute("#pid", "aria-invalid") == "true"
        await check(page, f"TestID with an error [{lang}]")

        for path in ("/login/password", "/login/upstream"):
            auth = page.url.split("auth=")[-1] if "auth=" in page.url else None
            if auth is None:
                break
            response = await page.goto(site.url(f"{path}?auth={auth}"))
            if response is not None and response.status == 200:
                await check(page, f"{path} [{lang}]")
            await page.go_back()

        await page.goto(site.url("/endsession"))
        await check(page, f"logout confirmation [{lang}]")
        await page.click("form[action='/endsession/confirm'] button")
        await check(page, f"logged out [{lang}]")

        await page.goto(site.url("/authorize?client_id=nobody&redirect_uri=https://x.example/"))
        await check(page, f"authorization error [{lang}]")

        await page.goto(site.url("/demo/rp"))
        await check(page, f"demo service [{lang}]")
        assert person.pid  # the register has people to log in as
