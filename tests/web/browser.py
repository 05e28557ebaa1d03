"""Real-browser plumbing for the page tests: headless Chromium through Playwright, axe-core,
a layout check for narrow screens and a console recorder.

The browser is Debian's Chromium (`/usr/bin/chromium`, or `FELLES_CHROMIUM`): Playwright
cannot download its own here. axe-core comes from npm (`make assets`), pinned in
package-lock.json. When either is missing the browser tests skip with the reason, except
under `CI=true`, where they fail.

How axe gets into the page: our pages send `Content-Security-Policy: script-src 'self'`,
so `page.add_script_tag(path=...)` is refused (it inserts an inline `<script>`; Chromium
blocks it and logs a CSP violation). `bypass_csp=True` on the context would work but
would switch off the very policy the tests also check. So axe comes through the DevTools
protocol, which CSP does not govern: `Site.new_context` registers it as an init script
(each new document gets it from V8's code cache, about ten times cheaper than sending
half a megabyte of source per page), and `run_axe` evaluates it into any page that lacks
it. The page keeps its real policy and its console stays clean.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_PATH = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Headless, as root, and offline: without the background-networking flags Chromium
# keeps trying to reach Google's servers, which this machine cannot.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LANGUAGE_CODES = ("nb", "nn", "en")
# The languages page journeys are walked in. Pages look the same on either database, and
# another language is other text on the same code paths: both runs walk every journey in
# bokmål (so every query behind a page runs on both databases), the SQLite run in
# nynorsk too and the PostgreSQL run in English, so each language is checked once and
# the two runs, which `make test` runs side by side, take about as long.
PAGE_LANGUAGES = (
    ("nb", "nn") if os.environ.get("FELLES_TEST_BACKEND", "sqlite") == "sqlite" else ("nb", "en")
)
# Every page is checked at the narrowest width we promise and at a desktop width.
NARROW, WIDE = 320, 1280
WIDTHS = (NARROW, WIDE)
# What a browser in Norway sends; the language cookie overrides it.
BROWSER_LOCALE = "nb-NO"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
BEST_PRACTICE = "best-practice"


# --- finding the browser and axe ------------------------------------------------------


def chromium_path() -> Path | None:
    """`FELLES_CHROMIUM` if set, else Debian's Chromium, else whatever `chromium` is on PATH."""
    configured = os.environ.get("FELLES_CHROMIUM")
    if configured:
        return Path(configured) if Path(configured).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("chromium")
    return Path(found) if found else None


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        where = os.environ.get("FELLES_CHROMIUM") or " or ".join(CHROMIUM_CANDIDATES)
        return f"Chromium not found at {where} (apt-get install chromium, or set FELLES_CHROMIUM)"
    if not AXE_PATH.exists():
        return f"axe-core not found at {AXE_PATH} (run `make assets`)"
    return None


def skip_or_fail(reason: str) -> NoReturn:
    """Skip outside CI; under CI=true a missing browser is a failure, not a silent pass."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@cache
def axe_source() -> str:
    return AXE_PATH.read_text(encoding="utf-8")


# --- the browser fixture factory ------------------------------------------------------


def browser_fixture(
    *, name: str = "browser", scope: str = "session", extra_args: Iterable[str] = ()
) -> Callable[[], AsyncIterator[Browser]]:
    """A pytest fixture that starts one headless Chromium for its scope (default: session).

    In a conftest: `browser = browser_fixture()`. Skips (or fails under CI) when Chromium,
    Playwright or axe-core is missing.
    """
    args = [*CHROMIUM_ARGS, *extra_args]

    async def browser() -> AsyncIterator[Browser]:
        reason = missing_requirement()
        if reason:
            skip_or_fail(reason)
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            launched = await playwright.chromium.launch(
                executable_path=str(chromium_path()), headless=True, args=args
            )
            try:
                yield launched
            finally:
                await launched.close()

    return pytest.fixture(scope=scope, name=name)(browser)  # type: ignore[call-overload,no-any-return]


# --- axe ------------------------------------------------------------------------------


class AxeNode(TypedDict):
    target: list[Any]
    html: str
    failureSummary: str


class AxeViolation(TypedDict):
    id: str
    impact: str | None
    tags: list[str]
    help: str
    helpUrl: str
    nodes: list[AxeNode]


_RUN_AXE = """async (tags) => {
  const results = await window.axe.run(document, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations"],
  });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, tags: v.tags, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target, html: n.html, failureSummary: n.failureSummary || "",
    })),
  }));
}"""


async def run_axe(
    page: Page, tags: Iterable[str] = (*WCAG_TAGS, BEST_PRACTICE)
) -> list[AxeViolation]:
    """Run axe-core on the page as it is now and return its violations for these tags.

    axe is evaluated over the DevTools protocol, not added as a `<script>`: see the
    module docstring for why (CSP).
    """
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    violations: list[AxeViolation] = await page.evaluate(_RUN_AXE, list(tags))
    return violations


def is_wcag(violation: AxeViolation) -> bool:
    return any(tag in WCAG_TAGS for tag in violation["tags"])


def split_violations(
    violations: Iterable[AxeViolation],
) -> tuple[list[AxeViolation], list[AxeViolation]]:
    """(WCAG 2.1 A/AA violations, which fail a test; best-practice ones, which are reported)."""
    wcag: list[AxeViolation] = []
    other: list[AxeViolation] = []
    for violation in violations:
        (wcag if is_wcag(violation) else other).append(violation)
    return wcag, other


# axe's best-practice rules are not WCAG requirements: tests record them here and the
# conftest prints them at the end of the run ("report only").
BEST_PRACTICE_FINDINGS: dict[str, set[str]] = {}


def report_best_practice(where: str, violations: Iterable[AxeViolation]) -> None:
    for violation in violations:
        targets = ", ".join(_target(node) for node in violation["nodes"][:3])
        key = f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}"
        BEST_PRACTICE_FINDINGS.setdefault(key, set()).add(where)


def _target(node: AxeNode) -> str:
    # Inside iframes or shadow roots axe gives a list per level; flatten it readably.
    return " >> ".join(
        " ".join(part) if isinstance(part, list) else str(part) for part in node["target"]
    )


def format_violations(violations: Iterable[AxeViolation], *, max_nodes: int = 5) -> str:
    """Readable lines for an assertion message: rule, impact, what to do, where."""
    lines: list[str] = []
    for violation in violations:
        wcag = ",".join(t for t in violation["tags"] if t.startswith("wcag")) or BEST_PRACTICE
        lines.append(
            f"- {violation['id']} [{violation['impact'] or 'n/a'}; {wcag}]: {violation['help']}"
            f" ({violation['helpUrl']})"
        )
        nodes = violation["nodes"]
        for node in nodes[:max_nodes]:
            lines.append(f"    at {_target(node)}")
            html = node["html"].strip()
            lines.append(f"       {html[:160]}{'…' if len(html) > 160 else ''}")
            summary = " ".join(node["failureSummary"].split())
            if summary:
                lines.append(f"       {summary[:300]}")
        if len(nodes) > max_nodes:
            lines.append(f"    … and {len(nodes) - max_nodes} more")
    return "\n".join(lines)


# --- layout at narrow widths -----------------------------------------------------------

_LAYOUT_PROBLEMS = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (el.classList.length ? "." + [...el.classList].join(".") : "");
  const path = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) {
      parts.unshift(name(e));
    }
    return parts.join(" > ");
  };
  const visuallyHidden = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === "none" || s.visibility === "hidden") return true;
      if (s.clip && s.clip !== "auto") return true;
      if (s.clipPath && s.clipPath.startsWith("inset(50%")) return true;
      if (s.overflow === "hidden" && e.clientWidth <= 1) return true;
    }
    return false;
  };
  const scrolls = (el) => {
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const x = getComputedStyle(e).overflowX;
      if (x === "auto" || x === "scroll") return true;
    }
    return false;
  };
  // Text that sticks out of the viewport sideways (and so is cut off or needs scrolling).
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const outside = [...range.getClientRects()].some(
      (r) => r.width > 0 && (r.right > width + 1 || r.left < -1));
    if (outside && !visuallyHidden(el) && !scrolls(el)) {
      seen.add(el);
      const text = node.textContent.trim().slice(0, 40);
      problems.push(`text outside the ${width} px viewport: ${path(el)} "${text}"`);
    }
  }
  // Boxes that clip their own text (overflow hidden/clip, text-overflow: ellipsis).
  for (const el of document.body.querySelectorAll("*")) {
    const s = getComputedStyle(el);
    const clipsX = s.overflowX === "hidden" || s.overflowX === "clip";
    if (!clipsX || !el.textContent.trim() || el.scrollWidth <= el.clientWidth + 1) continue;
    if (visuallyHidden(el)) continue;
    problems.push(
      `text cut off in ${path(el)}: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
  }
  return problems;
}"""


async def page_width(page: Page) -> int:
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width


async def layout_problems(page: Page) -> list[str]:
    """Text sticking out of the viewport or clipped by its box (scroll containers excepted)."""
    problems: list[str] = await page.evaluate(_LAYOUT_PROBLEMS)
    return problems


# --- console and CSP -------------------------------------------------------------------

# Registered before any page script (an init script runs through the DevTools protocol,
# so CSP does not block it); it only listens.
CSP_LISTENER = """
window.__fellesCspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile || e.documentURI}:${e.lineNumber}`;
  window.__fellesCspViolations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "(inline)"} at ${where}`);
});
"""


ConsoleFilter = Callable[[str], bool]


@dataclass
class ConsoleLog:
    """Console messages and uncaught errors of one page, recorded from the start."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page) -> ConsoleLog:
        log = cls()

        def on_console(message: ConsoleMessage) -> None:
            where = message.location.get("url", "")
            text = f"{message.type}: {message.text} ({where})"
            log.messages.append(text)
            if message.type == "error":
                log.errors.append(text)

        def on_page_error(error: Error) -> None:
            log.errors.append(f"uncaught: {error}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        return log

    def csp_messages(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]

    def unexpected_errors(self, allowed: ConsoleFilter = lambda _: False) -> list[str]:
        return [e for e in self.errors if not allowed(e)]


async def csp_violations(page: Page) -> list[str]:
    """`securitypolicyviolation` events seen by the page (needs CSP_LISTENER as init script)."""
    seen: list[str] = await page.evaluate("window.__fellesCspViolations || []")
    return seen


# --- the site in the browser ------------------------------------------------------------


@dataclass
class Site:
    """The live server as seen through the session's browser."""

    browser: Browser
    base_url: str
    contexts: dict[str, BrowserContext] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    async def new_context(self, **options: Any) -> BrowserContext:
        """A fresh context (own cookies) that records CSP violations from the first byte."""
        options.setdefault("locale", BROWSER_LOCALE)
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await self.browser.new_context(**options)
        context.set_default_timeout(10_000)
        await context.add_init_script(script=CSP_LISTENER)
        await context.add_init_script(script=axe_source())
        return context

    async def language_context(self, lang: str) -> BrowserContext:
        """The shared context whose language cookie is `lang`, chosen the way people do:
        through the `/language/{lang}?next=/` link of the language switch."""
        if lang not in self.contexts:
            context = await self.new_context()
            page = await context.new_page()
            await page.goto(self.url(f"/language/{lang}?next=/"))
            assert page.url == self.url("/"), page.url
            assert await page.get_attribute("html", "lang") == lang
            await page.close()
            self.contexts[lang] = context
        return self.contexts[lang]

    @asynccontextmanager
    async def page(
        self, lang: str, width: int, height: int = 800
    ) -> AsyncIterator[tuple[Page, ConsoleLog]]:
        """A new page in the language's shared context at this viewport, with its console
        recorded from the start; closed afterwards."""
        context = await self.language_context(lang)
        page = await context.new_page()
        console = ConsoleLog.attach(page)
        await page.set_viewport_size({"width": width, "height": height})
        try:
            yield page, console
        finally:
            await page.close()

    async def close(self) -> None:
        for context in self.contexts.values():
            await context.close()
        self.contexts.clear()


async def assert_page_passes(page: Page, where: str, width: int) -> None:
    """What every page must pass: axe's WCAG 2.1 AA rules (best-practice findings are
    reported, not failed), no sideways scrolling at `width`, a sound narrow layout and no
    content-security-policy violations."""
    wcag, best_practice = split_violations(await run_axe(page))
    report_best_practice(where, best_practice)
    assert not wcag, f"axe found WCAG 2.1 AA violations on {where}:\n" + format_violations(wcag)
    assert await page_width(page) <= width, f"{where} scrolls sideways"
    problems = await layout_problems(page)
    assert not problems, f"{where}:\n" + "\n".join(problems)
    assert await csp_violations(page) == []


async def assert_page_passes_at_widths(
    page: Page, where: str, widths: Iterable[int] = WIDTHS
) -> None:
    """`assert_page_passes` at each width in turn, then back at the page's own width. The
    page is resized, not loaded again: one walk through a journey checks every page it
    passes at every width."""
    viewport = page.viewport_size
    for width in widths:
        await page.set_viewport_size({"width": width, "height": 800})
        await assert_page_passes(page, f"{where} at {width} px", width)
    if viewport is not None:
        await page.set_viewport_size(viewport)


async def log_in_with_testid(page: Page, pid: str, wait_for: str) -> None:
    """On the login service's page a relying party sent `page` to: choose TestID, log in
    as `pid` and wait until back at `wait_for` (a URL glob)."""
    assert "/login?auth=" in page.url, page.url
    await page.click("a.method-link[href^='/login/testid']")
    await page.fill("#pid", pid)
    await page.click("form[action='/login/testid'] button[type=submit]")
    await page.wait_for_url(wait_for, timeout=15_000)


async def log_in(site: Site, context: BrowserContext, pid: str, next_path: str) -> None:
    """The real journey: the portal sends the person to the login service, they log in
    with TestID and come back to `next_path`."""
    page = await context.new_page()
    await page.goto(site.url(f"/portal/login?next={next_path}"))
    await log_in_with_testid(page, pid, f"**{next_path}")
    await page.close()
