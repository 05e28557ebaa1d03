"""The JSON log line: context, level, UTC timestamp, exception, identity numbers masked."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import structlog

from felles.web.observability import configure_logging, log


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]


def test_a_line_has_context_level_and_timestamp_and_masks_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    structlog.contextvars.bind_contextvars(request_id="req-01818012345")
    try:
        log.info("lookup", path="/registry/01818012345", count=18180123456, short="0181801")
        log.warn("slow", ms=12.5)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    lookup, slow = _lines(capsys)
    assert list(lookup) == ["path", "count", "short", "event", "request_id", "level", "timestamp"]
    assert lookup["path"] == "/registry/018180*****"
    assert lookup["request_id"] == "req-018180*****"
    assert lookup["count"] == 18180123456  # numbers are not strings: left as they are
    assert lookup["short"] == "0181801"
    assert lookup["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(lookup["timestamp"]))
    assert slow["level"] == "warning" and slow["ms"] == 12.5


def test_exceptions_are_formatted_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        raise ValueError("no person 01818012345")
    except ValueError:
        log.exception("failed", target=object())
    (line,) = _lines(capsys)
    assert line["level"] == "error"
    assert "ValueError: no person 018180*****" in str(line["exception"])
    assert str(line["target"]).startswith("<object object at")


def test_other_libraries_log_the_same_json_and_httpx_keeps_its_urls_to_itself() -> None:
    """A fresh process, as `felles serve` starts: uvicorn's records become JSON lines
    too (masked); httpx's request lines, which carry whole URLs, are not written."""
    script = (
        "import logging\n"
        "from felles.web.observability import configure_logging\n"
        "configure_logging('INFO')\n"
        "logging.getLogger('uvicorn.error').info('Started for %s', '01818012345')\n"
        "logging.getLogger('httpx').info('HTTP Request: GET https://rp.example/cb?code=s3cret')\n"
        "logging.getLogger('alembic').warning('careful')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(x["logger"], x["level"], x["event"]) for x in lines] == [
        ("uvicorn.error", "info", "Started for 018180*****"),
        ("alembic", "warning", "careful"),
    ]
    assert "s3cret" not in done.stderr
