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
    NARROW,
    PAGE_LANGUAGES,
    WIDE,
    ConsoleFilter,
    Site,
    assert_page_passes_at_widths,
    csp_violations,
    format_violations,
    layout_problems,
    run_axe,
    split_violations,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

try:
    from playwright.async_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

# Every page the shell has, with the status it answers.
PAGES = {
    "/": 200,
    "/problems": 200,
    "/problems/not-found": 200,
    "/api/docs": 200,
    "/does-not-exist": 404,
}


async def settle(page: Page) -> None:
    """Wait until what scripts add is there (Swagger UI renders the API docs after load)."""
    await page.wait_for_load_state("load")


def known_noise(path: str, status: int) -> ConsoleFilter:
    """Console errors that are not faults of the page: the 404 page's own status."""

    def allowed(error: str) -> bool:
        if "Failed to load resource" not in error:
            return False
        return status == 404 and f"{path})" in error

    return allowed


@pytest.mark.parametrize("path", list(PAGES))
@pytest.mark.parametrize("lang", PAGE_LANGUAGES)
async def test_page_passes_axe_fits_the_screen_and_keeps_a_clean_console(
    site: Site, lang: str, path: str
) -> None:
    async with site.page(lang, NARROW) as (page, console):
        response = await page.goto(site.url(path))
        assert response is not None and response.status == PAGES[path]
        await settle(page)
        assert await page.get_attribute("html", "lang") == lang
        assert (await page.title()).strip()

        await assert_page_passes_at_widths(page, f"{path} [{lang}]")
        assert console.csp_messages() == []
        assert console.unexpected_errors(known_noise(path, PAGES[path])) == []


async def test_skip_link_is_the_first_stop_and_moves_focus_to_main(site: Site) -> None:
    async with site.page("nb", NARROW) as (page, _console):
        await page.goto(site.url("/problems"))
        await page.keyboard.press("Tab")
        skip_link = page.locator("a.skip-link")
        await expect(skip_link).to_be_focused()
        await expect(skip_link).to_have_attribute("href", "#main")
        await expect(skip_link).to_be_in_viewport()  # hidden until focused, then on screen
        box = await skip_link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW, box

        await page.keyboard.press("Enter")
        await expect(page.locator("main#main")).to_be_focused()
        assert page.url.endswith("#main")
        # The next Tab goes on into the content, not back to the header.
        await page.keyboard.press("Tab")
        assert await page.evaluate(
            "document.querySelector('main').contains(document.activeElement)"
            " || document.querySelector('footer').contains("
            "document.activeElement)"
        )


async def test_language_switch_changes_the_page_language_and_is_remembered(site: Site) -> None:
    context = await site.new_context(viewport={"width": NARROW, "height": 800})
    try:
        page = await context.new_page()
        html = page.locator("html")
        switch = page.locator("nav.language-switch")
        await page.goto(site.url("/problems"))
        await expect(html).to_have_attribute("lang", "nb")  # from the nb-NO browser

        await switch.get_by_role("link", name="English", exact=True).click()
        await expect(html).to_have_attribute("lang", "en")
        assert page.url == site.url("/problems")  # back where the person was
        await expect(switch.locator("[aria-current='true']")).to_have_text("English")

        await page.goto(site.url("/"))  # a new page load: the choice is remembered
        await expect(html).to_have_attribute("lang", "en")
        await expect(page.locator("h1")).to_have_text("Public services in one place")

        await switch.get_by_role("link", name="Nynorsk", exact=True).click()
        await expect(html).to_have_attribute("lang", "nn")
        await page.reload()
        await expect(html).to_have_attribute("lang", "nn")
        await expect(page.locator("h1")).not_to_have_text("Public services in one place")
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
        await expect(page.locator("h1")).to_be_visible()
        await expect(page.locator(".task-card")).to_have_count(6)
        await expect(page.locator("footer a[href='/problems']")).to_be_visible()
        await expect(page.locator("footer a[href='/api/docs']")).to_be_visible()

        # Links are plain links: changing language needs no script.
        await page.locator("nav.language-switch").get_by_role("link", name="English").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")

        await page.goto(site.url("/problems"))
        await expect(page.locator("table tbody tr").first).to_be_visible()

        # Without Swagger UI the API docs still say where the description is.
        await page.goto(site.url("/api/docs"))
        await expect(page.locator("main a[href='/api/openapi.json']")).to_be_visible()
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


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FELLES_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_front_page_screenshots(site: Site, screenshot_dir: Path) -> None:
    for width in (NARROW, WIDE):
        async with site.page("nb", width) as (page, _console):
            await page.goto(site.url("/"))
            shot = screenshot_dir / f"front-page-{width}px.png"
            png = await page.screenshot(path=str(shot), full_page=True)
            # A full-page shot is as wide as the page: exactly the viewport, no overflow.
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            assert int.from_bytes(png[16:20], "big") == width


async def test_the_checks_catch_what_they_should(site: Site) -> None:
    """The checkers themselves: a deliberately broken page must trip each of them."""
    context = await site.new_context(viewport={"width": NARROW, "height": 800})
    try:
        page = await context.new_page()
        await page.set_content(
            """<!doctype html><html lang="en"><head><title>Broken</title>
            <style>body { overflow-x: hidden } .wide { white-space: nowrap }
            .clip { width: 5rem; overflow: hidden; white-space: nowrap }
            .pale { color: #bbb }</style></head>
            <body><main><h1>Broken</h1>
            <p class="wide">A line of text far too long to fit on a phone screen at all</p>
            <div class="clip">Text clipped by its own box</div>
            <p class="pale">Too pale to read</p><img src="data:,"></main></body></html>"""
        )
        wcag, _ = split_violations(await run_axe(page))
        assert {v["id"] for v in wcag} >= {"color-contrast", "image-alt"}
        assert "image-alt" in format_violations(wcag)
        problems = await layout_problems(page)
        assert any("outside the 320 px viewport" in p and "p.wide" in p for p in problems)
        assert any("cut off" in p and "div.clip" in p for p in problems)
    finally:
        await context.close()
