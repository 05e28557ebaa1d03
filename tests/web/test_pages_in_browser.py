"""Every page of the shell in a real headless Chromium: axe-core (WCAG 2.1 A and AA) with
zero violations, usable from 320 px wide, in bokmål, nynorsk and English; plus the skip
link, the language switch, pages without JavaScript and the content security policy.

Runs against the real `felles serve --demo` over HTTP. Screenshots of the front page go
to $FELLES_SCREENSHOT_DIR when set (e.g. /tmp/shots), else to the test's tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.web.browser import (
    LANGUAGE_CODES,
    ConsoleFilter,
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
    from playwright.async_api import Page

pytestmark = pytest.mark.browser

# Every page the shell has, with the status it answers.
PAGES = {
    "/": 200,
    "/problems": 200,
    "/problems/not-found": 200,
    "/api/docs": 200,
    "/does-not-exist": 404,
}
NARROW, WIDE = 320, 1280


async def settle(page: Page) -> None:
    """Wait until what scripts add is there (Swagger UI renders the API docs after load)."""
    if await page.locator("script[src*='swagger-ui-bundle']").count():
        await page.locator("#swagger-ui .swagger-ui .info").wait_for()


def known_noise(path: str, status: int) -> ConsoleFilter:
    """Console errors that are not faults of the page: the 404 page's own status, and the
    browser's automatic /favicon.ico request (Felles serves no favicon)."""

    def allowed(error: str) -> bool:
        if "Failed to load resource" not in error:
            return False
        return "/favicon.ico)" in error or (status == 404 and f"{path})" in error)

    return allowed


@pytest.mark.parametrize("width", [NARROW, WIDE], ids=lambda w: f"{w}px")
@pytest.mark.parametrize("path", list(PAGES))
@pytest.mark.parametrize("lang", LANGUAGE_CODES)
async def test_page_passes_axe_fits_the_screen_and_keeps_a_clean_console(
    site: Site, lang: str, path: str, width: int
) -> None:
    async with site.page(lang, width) as (page, console):
        response = await page.goto(site.url(path), wait_until="networkidle")
        assert response is not None and response.status == PAGES[path]
        await settle(page)
        assert await page.get_attribute("html", "lang") == lang
        assert (await page.title()).strip()

        wcag, best_practice = split_violations(await run_axe(page))
        report_best_practice(f"{path} [{lang}, {width} px]", best_practice)
        assert not wcag, f"axe found WCAG 2.1 AA violations on {path} [{lang}, {width} px]:\n" + (
            format_violations(wcag)
        )

        assert await page_width(page) <= width, f"{path} scrolls sideways at {width} px"
        problems = await layout_problems(page)
        assert not problems, f"{path} at {width} px:\n" + "\n".join(problems)

        assert await csp_violations(page) == []
        assert console.csp_messages() == []
        assert console.unexpected_errors(known_noise(path, PAGES[path])) == []


async def test_skip_link_is_the_first_stop_and_moves_focus_to_main(site: Site) -> None:
    async with site.page("nb", NARROW) as (page, _console):
        await page.goto(site.url("/problems"))
        await page.keyboard.press("Tab")
        focused = page.locator(":focus")
        assert await focused.get_attribute("href") == "#main"
        assert "skip-link" in (await focused.get_attribute("class") or "")
        assert await focused.is_visible()
        box = await focused.bounding_box()
        assert box is not None and box["y"] >= 0 and box["x"] + box["width"] <= NARROW, (
            f"the focused skip link is not on screen: {box}"
        )

        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"
        assert page.url.endswith("#main")
        # The next Tab goes into the content, not back to the header.
        await page.keyboard.press("Tab")
        inside_main = await page.evaluate(
            "document.getElementById('main').contains(document.activeElement)"
            " || document.querySelector('footer').contains(document.activeElement)"
        )
        assert inside_main


async def test_language_switch_changes_the_page_language_and_is_remembered(site: Site) -> None:
    context = await site.new_context(viewport={"width": NARROW, "height": 800})
    try:
        page = await context.new_page()
        await page.goto(site.url("/problems"))
        assert await page.get_attribute("html", "lang") == "nb"  # from the nb-NO browser
        switch = page.locator("nav.language-switch")

        await switch.get_by_role("link", name="English", exact=True).click()
        await page.wait_for_url(site.url("/problems"))
        assert await page.get_attribute("html", "lang") == "en"
        current = switch.locator("[aria-current='true']")
        assert await current.text_content() == "English"

        await page.goto(site.url("/"))  # a new page load: the choice is remembered
        assert await page.get_attribute("html", "lang") == "en"
        assert await page.locator("h1").text_content() == "Public services in one place"

        await switch.get_by_role("link", name="Nynorsk", exact=True).click()
        await page.wait_for_url(site.url("/"))
        assert await page.get_attribute("html", "lang") == "nn"
        await page.reload()
        assert await page.get_attribute("html", "lang") == "nn"
        assert await page.locator("h1").text_content() != "Public services in one place"
    finally:
        await context.close()


async def test_pages_work_without_javascript(site: Site) -> None:
    context = await site.new_context(
        java_script_enabled=False, viewport={"width": NARROW, "height": 800}
    )
    try:
        page = await context.new_page()
        response = await page.goto(site.url("/"))
        assert response is not None and response.status == 200
        assert await page.locator("h1").is_visible()
        assert await page.locator(".task-card").count() == 6
        assert await page.locator(".agency-list li").count() > 0
        assert await page.locator("footer a[href='/api/docs']").is_visible()

        # Links are plain links: changing language needs no script.
        await page.locator("nav.language-switch").get_by_role("link", name="English").click()
        await page.wait_for_url(site.url("/"))
        assert await page.get_attribute("html", "lang") == "en"

        await page.goto(site.url("/problems"))
        assert await page.locator("table tbody tr").count() > 0

        # The API docs still say where the machine-readable description is.
        await page.goto(site.url("/api/docs"))
        assert await page.locator("main a[href='/api/openapi.json']").is_visible()
    finally:
        await context.close()


async def test_csp_blocks_inline_scripts(site: Site) -> None:
    async with site.page("en", WIDE) as (page, console):
        response = await page.goto(site.url("/"))
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert await csp_violations(page) == []

        # What an injection would do: add an inline script and an inline event handler.
        ran = await page.evaluate(
            """async () => {
              window.__inlineRan = false;
              const script = document.createElement("script");
              script.textContent = "window.__inlineRan = true";
              document.body.append(script);
              const img = document.createElement("img");
              img.setAttribute("onerror", "window.__inlineRan = true");
              img.src = "/does-not-exist.png";
              document.body.append(img);
              await new Promise((resolve) => setTimeout(resolve, 300));
              return window.__inlineRan;
            }"""
        )
        assert ran is False
        blocked = await csp_violations(page)
        assert any(v.startswith("script-src") for v in blocked), blocked
        assert console.csp_messages(), "Chromium did not report the blocked inline script"


async def test_front_page_screenshots(site: Site, tmp_path: Path) -> None:
    folder = Path(os.environ.get("FELLES_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for width in (NARROW, WIDE):
        async with site.page("nb", width) as (page, _console):
            await page.goto(site.url("/"), wait_until="networkidle")
            shot = folder / f"front-page-{width}.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 1000
