"""Passkeys in a real headless Chromium with a virtual authenticator (DevTools' WebAuthn
domain): a person logs in with TestID, adds a passkey on the account page, logs out, and
logs in to a service with the passkey; the service's ID token says level high by `hwk`.
The pages pass axe-core and fit 320 px, in every language, with no CSP violations.

WebAuthn needs a secure context and a domain name as RP ID: `http://localhost` is one,
`http://127.0.0.1` (the shared `live_server`) is not. So this module runs its own
`felles serve` with FELLES_BASE_URL=http://localhost:<port>, on the same test database.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.identity import levels
from felles.identity.models import PasskeyCredential
from felles.registry import service as registry
from tests.conftest import serving
from tests.identity.conftest import register
from tests.identity.oidc import Pkce, query_of
from tests.web.browser import (
    PAGE_LANGUAGES,
    ConsoleLog,
    Site,
    csp_violations,
    format_violations,
    layout_problems,
    page_width,
    report_best_practice,
    run_axe,
    split_violations,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, CDPSession, Page

try:
    from playwright.async_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

NARROW, WIDE = 320, 1280
# The service's redirect URI: a page of the test server itself (Playwright's routing does
# not follow a redirect to a made-up host), the front page with a marker in the query.
CALLBACK_QUERY = "/?service=passkey-test"
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}
_next_person = itertools.count(250)  # people 250.. of the demo register, one per test


# --- a server at http://localhost ----------------------------------------------------------


@pytest.fixture(scope="module")
def localhost_server(settings: Settings, db: Database) -> Iterator[str]:
    """`felles serve` whose base URL (and so RP ID) is localhost, as WebAuthn needs."""
    with serving(settings, host="localhost") as base_url:
        yield base_url


@pytest.fixture(scope="module")
async def local_site(browser: Browser, localhost_server: str) -> AsyncIterator[Site]:
    shared = Site(browser=browser, base_url=localhost_server)
    yield shared
    await shared.close()


@pytest.fixture
async def person(db: Database) -> str:
    async with db.session() as session:
        (record,) = await registry.list_people(session, limit=1, offset=next(_next_person))
    return record.pid


@pytest.fixture
async def service_client(db: Database, localhost_server: str) -> tuple[str, str]:
    """A public service registered with Felles (client_secret_basic), as agencies have."""
    client, secret = await register(db, redirect_uris=[localhost_server + CALLBACK_QUERY])
    assert secret is not None
    return client.client_id, secret


async def browser_context(site: Site, lang: str, width: int = WIDE) -> BrowserContext:
    """A fresh context (own cookies) in `lang`."""
    context = await site.new_context(viewport={"width": width, "height": 800})
    if lang != "nb":
        page = await context.new_page()
        await page.goto(site.url(f"/language/{lang}?next=/"))
        await page.close()
    return context


async def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, str(added["authenticatorId"])


def authorize_url(site: Site, client_id: str, pkce: Pkce, **extra: str) -> str:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": site.url(CALLBACK_QUERY),
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return site.url("/authorize?" + urlencode(params))


async def id_token_claims(
    site: Site, client: tuple[str, str], code: str, pkce: Pkce
) -> dict[str, Any]:
    """Redeem the code as the service would, and verify the ID token's signature."""
    client_id, secret = client
    server = site.base_url.replace("localhost", "127.0.0.1")  # server to server
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": site.url(CALLBACK_QUERY),
                "code_verifier": pkce.verifier,
            },
            auth=(client_id, secret),
        )
        assert response.status_code == 200, response.text
        keys = KeySet.import_key_set((await http.get("/jwks")).json())
    token = jwt.decode(response.json()["id_token"], keys, algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": site.base_url},
        aud={"essential": True, "value": client_id},
    ).validate(token.claims)
    return dict(token.claims)


async def log_out(page: Page, site: Site) -> None:
    """RP-less logout: the person confirms on Felles' own page (when it asks)."""
    await page.goto(site.url("/endsession"))
    confirm = page.locator("form[action='/endsession/confirm'] [type=submit]")
    if await confirm.count():
        async with page.expect_navigation():
            await confirm.click()


async def check_page(page: Page, console: ConsoleLog, where: str) -> None:
    """axe (WCAG 2.1 A/AA) clean, fits 320 px and a wide screen, no CSP or console errors."""
    original = page.viewport_size or {"width": WIDE, "height": 800}
    for width in (NARROW, WIDE):
        await page.set_viewport_size({"width": width, "height": 800})
        wcag, best_practice = split_violations(await run_axe(page))
        report_best_practice(f"{where} [{width} px]", best_practice)
        assert not wcag, f"axe on {where} at {width} px:\n" + format_violations(wcag)
        assert await page_width(page) <= width, f"{where} scrolls sideways at {width} px"
        problems = await layout_problems(page)
        assert not problems, f"{where} at {width} px:\n" + "\n".join(problems)
    await page.set_viewport_size(original)
    assert await csp_violations(page) == []
    assert console.csp_messages() == []
    assert console.unexpected_errors() == []


# --- the whole journey -------------------------------------------------------------------


async def test_add_a_passkey_then_log_in_to_a_service_with_it(
    local_site: Site, person: str, service_client: tuple[str, str]
) -> None:
    site = local_site
    client_id = service_client[0]
    context = await browser_context(site, "en")
    try:
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        cdp, authenticator_id = await virtual_authenticator(page)

        # 1. Log in with TestID at level high (ID-porten's login_hint convention).
        hint = f"testid:{person}_{levels.HIGH}"
        await page.goto(authorize_url(site, client_id, Pkce(), login_hint=hint))
        assert page.url.startswith(site.url(CALLBACK_QUERY)), page.url

        # 2. Add a passkey.
        await page.goto(site.url("/account/passkeys"))
        await expect(page.locator("h1")).to_have_text("Your passkeys")
        await expect(page.locator("#passkey-start")).to_be_visible()  # JS showed the controls
        await check_page(page, console, "/account/passkeys (none yet)")
        await page.locator("#passkey-name").fill("Laptop at work")
        await page.locator("#passkey-start").click()
        await page.wait_for_url("**/account/passkeys?done=added")
        await expect(page.get_by_role("status")).to_contain_text("Your passkey has been added")
        await expect(page.locator("main h3")).to_have_text(["Laptop at work"])
        await check_page(page, console, "/account/passkeys (one added)")
        stored = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
        (credential,) = stored["credentials"]
        assert credential["isResidentCredential"] is True  # discoverable: nothing to type
        assert credential["rpId"] == "localhost"

        # 3. Log out of everything.
        await log_out(page, site)
        await expect(page.locator("h1")).to_have_text("You are logged out")

        # 4. A service asks for level high; the person picks the passkey.
        pkce = Pkce()
        await page.goto(authorize_url(site, client_id, pkce, acr_values=levels.HIGH))
        assert "/login?auth=" in page.url
        await page.locator("a.method-link[href^='/login/passkey']").click()
        await expect(page.locator("h1")).to_have_text("Log in with a passkey")
        await expect(page.locator("noscript")).to_have_count(1)
        await check_page(page, console, "/login/passkey")
        await page.locator("#passkey-start").click()
        await page.wait_for_url("**/?service=passkey-test&**")
        result = query_of(page.url)
        assert "error" not in result, result

        claims = await id_token_claims(site, service_client, result["code"], pkce)
        assert claims["acr"] == levels.HIGH
        assert "hwk" in claims["amr"]
        assert claims["pid"] == person
        after = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
        assert after["credentials"][0]["signCount"] >= credential["signCount"]
        assert console.unexpected_errors() == []
    finally:
        await context.close()


async def test_a_failed_ceremony_shows_an_error_summary_and_can_be_retried(
    local_site: Site, db: Database, person: str, service_client: tuple[str, str]
) -> None:
    """The person's device does not verify them: plain words at the top of the page, the
    page title says so, focus moves there; the next try works."""
    site = local_site
    context = await browser_context(site, "en")
    try:
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        cdp, authenticator_id = await virtual_authenticator(page)
        hint = f"testid:{person}_{levels.HIGH}"
        await page.goto(authorize_url(site, service_client[0], Pkce(), login_hint=hint))
        await page.goto(site.url("/account/passkeys"))

        await cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": authenticator_id, "isUserVerified": False},
        )
        await page.locator("#passkey-start").click()
        summary = page.locator("#passkey-error")
        await expect(summary).to_be_visible()
        await expect(summary).to_be_focused()
        await expect(summary).to_contain_text("The passkey was not added")
        assert (await page.title()).startswith("Error: ")
        await check_page(page, console, "/account/passkeys (error)")
        await summary.get_by_role("link").click()
        await expect(page.locator("#passkey-start")).to_be_focused()

        await cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": authenticator_id, "isUserVerified": True},
        )
        await page.locator("#passkey-start").click()
        await page.wait_for_url("**/account/passkeys?done=added")
        await expect(page.locator("main h3")).to_have_text(["Unnamed passkey"])
        async with db.session() as session:  # the server and the tests share the database
            rows = await session.scalars(
                select(PasskeyCredential).where(PasskeyCredential.pid == person)
            )
            assert [row.name for row in rows] == [""]
    finally:
        await context.close()


@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_passkey_pages_in_every_language(
    local_site: Site, db: Database, person: str, service_client: tuple[str, str], lang: str
) -> None:
    """The account page with a long-named passkey, and the login page, at 320 px."""
    site = local_site
    async with db.session() as session:
        session.add(
            PasskeyCredential(
                credential_id=secrets.token_urlsafe(32),
                pid=person,
                public_key=b"",
                transports=["internal"],
                name="Arbeidsdatamaskinen min på kontoret i Storgata 15",
                created_at=datetime.now(UTC),
                last_used_at=datetime.now(UTC),
            )
        )
    context = await browser_context(site, lang, NARROW)
    try:
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        hint = f"testid:{person}_{levels.HIGH}"
        await page.goto(authorize_url(site, service_client[0], Pkce(), login_hint=hint))
        await page.goto(site.url("/account/passkeys"))
        assert await page.get_attribute("html", "lang") == lang
        await expect(page.locator("main h3")).to_have_count(1)
        await check_page(page, console, f"/account/passkeys [{lang}]")

        await log_out(page, site)
        await page.goto(authorize_url(site, service_client[0], Pkce(), acr_values=levels.HIGH))
        auth = query_of(page.url)["auth"]
        await page.goto(site.url(f"/login/passkey?auth={auth}"))
        await expect(page.locator("#passkey-start")).to_be_visible()
        await check_page(page, console, f"/login/passkey [{lang}]")
    finally:
        await context.close()


async def test_without_javascript_the_login_page_says_so_and_offers_the_other_ways(
    local_site: Site, service_client: tuple[str, str]
) -> None:
    site = local_site
    context = await site.new_context(
        java_script_enabled=False, viewport={"width": NARROW, "height": 800}
    )
    try:
        page = await context.new_page()
        await page.goto(site.url("/language/en?next=/"))
        await page.goto(authorize_url(site, service_client[0], Pkce(), acr_values=levels.HIGH))
        auth = query_of(page.url)["auth"]
        await page.goto(site.url(f"/login/passkey?auth={auth}"))
        # (Playwright's text search skips <noscript>, so look in it by tag.)
        message = page.locator("main noscript p")
        await expect(message).to_be_visible()
        await expect(message).to_contain_text("Passkeys do not work without JavaScript")
        await expect(page.locator("#passkey-start")).to_be_hidden()
        other_ways = page.get_by_role("link", name="Choose another way to log in")
        await other_ways.click()
        assert page.url == site.url(f"/login?auth={auth}")
    finally:
        await context.close()
