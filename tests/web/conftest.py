"""The browser tests' report of axe's best-practice findings (the `browser` and `site`
fixtures are in tests/conftest.py: one Chromium for the whole session)."""

from __future__ import annotations

import pytest

from tests.web.browser import BEST_PRACTICE_FINDINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """axe's best-practice findings: reported at the end of the run, never failing a test."""
    if not BEST_PRACTICE_FINDINGS:
        return
    terminalreporter.section("axe best-practice findings (report only, not WCAG failures)")
    for finding, places in sorted(BEST_PRACTICE_FINDINGS.items()):
        terminalreporter.write_line(f"{finding}")
        terminalreporter.write_line(f"    on {len(places)} page views, e.g. {sorted(places)[0]}")
