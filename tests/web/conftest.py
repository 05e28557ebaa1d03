"""Browser fixtures: one headless Chromium per session, one context per language.

`site` drives the real `felles serve --demo` (the `live_server` fixture of tests/conftest.py)
in that browser. Contexts are shared across tests (one per language, holding the
language cookie); every test gets fresh pages, closed when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.web.browser import BEST_PRACTICE_FINDINGS, Site, browser_fixture

if TYPE_CHECKING:
    from playwright.async_api import Browser

browser = browser_fixture()


@pytest.fixture(scope="session")
async def site(browser: Browser, live_server: str) -> AsyncIterator[Site]:
    shared = Site(browser=browser, base_url=live_server)
    yield shared
    await shared.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """axe's best-practice findings: reported at the end of the run, never failing a test."""
    if not BEST_PRACTICE_FINDINGS:
        return
    terminalreporter.section("axe best-practice findings (report only, not WCAG failures)")
    for finding, places in sorted(BEST_PRACTICE_FINDINGS.items()):
        terminalreporter.write_line(f"{finding}")
        terminalreporter.write_line(f"    on {len(places)} page views, e.g. {sorted(places)[0]}")
