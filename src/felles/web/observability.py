"""Structured JSON logs without personal data, correlation ids and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.routing import Match, Mount
from starlette.types import Scope

PID_PATTERN = re.compile(r"(?<!\d)(\d{6})\d{5}(?!\d)")

REQUESTS = Counter(
    "felles_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "felles_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

log = structlog.get_logger("felles")


def _masked(match: re.Match[str]) -> str:
    return match.group(1) + "*****"


def mask_identity_numbers(text: str) -> str:
    """Replace anything shaped like a national identity number by its masked form."""
    return PID_PATTERN.sub(_masked, text)


def _json_fallback(obj: Any) -> Any:
    """What JSONRenderer does with values JSON cannot hold: `__structlog__()`, else repr."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


_LEVELS = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them
# One encoder for every line (json.dumps with `default` builds a new one each call).
_encode = json.JSONEncoder(default=_json_fallback).encode


def _render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
    """The JSON line for an event, with the context's variables, level, UTC timestamp and
    formatted exception, identity numbers masked in every string value.

    The same line structlog's chain of merge_contextvars, add_log_level, TimeStamper,
    format_exc_info, a scrubber and JSONRenderer would give, in one step: the request
    line is written for every request, and the chain cost more than half of it.
    """
    structlog.contextvars.merge_contextvars(logger, name, event)
    event["level"] = _LEVELS.get(name, name)
    event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if "exc_info" in event:
        structlog.processors.format_exc_info(logger, name, event)
    for key, value in event.items():
        # An identity number is 11 digits: shorter strings cannot hold one.
        if isinstance(value, str) and len(value) >= 11:
            event[key] = mask_identity_numbers(value)
    return _encode(event)


class _StderrLogger:
    """Writes each event to whatever sys.stderr is now (tests and servers swap it)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")  # one write, not print's two
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


class _JsonFormatter(logging.Formatter):
    """Other libraries' records (uvicorn's, Alembic's) as the same JSON lines, masked."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {"event": record.getMessage(), "logger": record.name}
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return _render(None, record.levelname.lower(), event)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr, one per event; identity numbers are masked as a last defence."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(handlers=[handler], level=level.upper())
    for noisy in ("uvicorn.access",):  # the edge writes one line per request itself
        logging.getLogger(noisy).disabled = True
    # httpx says every request's full URL at INFO: a query can carry a secret.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    structlog.configure(
        processors=[_render],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )


def route_template(scope: Scope) -> str:
    """The route's path template (`/registry/{pid}`), never the raw path with its values."""
    matched = scope.get("route")
    if matched is not None:
        return str(getattr(matched, "path", "unmatched"))
    app = scope.get("app")
    router = getattr(app, "router", None)
    mounted = scope.get("root_path", "")
    for route in getattr(router, "routes", []):
        if isinstance(route, Mount):
            # A mount that answered has moved its prefix into root_path (static files).
            if mounted and route.path == mounted:
                return route.path
            continue
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


# The labelled children of REQUESTS and LATENCY, by (method, route, status): `labels()`
# checks and locks on every call, which costs more than counting itself.
_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    """Counts an answered request and its duration in the Prometheus metrics."""
    children = _CHILDREN.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _CHILDREN[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)
