"""Server-rendered pages: one Jinja2 environment for every part's templates."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from felles.web.i18n import LANGUAGE_COOKIE, LANGUAGES, pick_language, translations

PACKAGE_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"


def template_dirs() -> list[Path]:
    """web/templates first, then each part's templates/ (named <part>/page.html)."""
    dirs = [PACKAGE_DIR / "web" / "templates"]
    dirs += sorted(p for p in PACKAGE_DIR.glob("*/templates") if p.parent.name != "web")
    return dirs


@cache
def environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in template_dirs()]),
        autoescape=select_autoescape(("html", "xml")),
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
    )
    env.globals["languages"] = LANGUAGES
    env.globals["static"] = static_url
    env.globals["vendor_css"] = vendor_stylesheets()
    return env


@cache
def _file_version(path: str) -> str:
    file = STATIC_DIR / path
    if not file.exists():
        return "0"
    return hashlib.sha256(file.read_bytes()).hexdigest()[:10]


def static_url(path: str) -> str:
    """A cache-busting URL for a static file (content hash in the query)."""
    return f"/static/{path}?v={_file_version(path)}"


def vendor_stylesheets() -> list[str]:
    """Designsystemet's CSS when `make assets` installed it; our own CSS stands without it."""
    names = ("designsystemet-theme.css", "designsystemet.css")
    return [f"vendor/{n}" for n in names if (VENDOR_DIR / n).exists()]


LOCAL_TIME = ZoneInfo("Europe/Oslo")
BABEL_LOCALES = {"nb": "nb", "nn": "nn", "en": "en_GB"}


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; Felles stores UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def local_time(value: datetime | None, lang: str, format: str = "medium") -> str:
    """A moment as people here read it: Norwegian time, in the page's language."""
    if value is None:
        return ""
    local = aware(value).astimezone(LOCAL_TIME)
    return format_datetime(local, format, locale=BABEL_LOCALES.get(lang, "nb"))


def request_language(request: Request) -> str:
    cached = getattr(request.state, "lang", None)
    if cached:
        return str(cached)
    lang = pick_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )
    request.state.lang = lang
    return lang


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page in the person's language with the shared layout's needs filled in."""
    lang = request_language(request)
    catalog = translations(lang)
    values: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "_": catalog.gettext,
        "gettext": catalog.gettext,
        "ngettext": catalog.ngettext,
        "format_time": lambda value, format="medium": local_time(value, lang, format),
        "csrf_token": csrf.token() if (csrf := getattr(request.state, "csrf", None)) else "",
        # Path and query, so switching language keeps e.g. a login's `auth` id.
        "current_path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    if context:
        values.update(context)
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
