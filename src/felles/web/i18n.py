"""Languages: bokmål, nynorsk and English through Babel message catalogs.

Source strings are English. Catalogs are read from the `.po` files at start-up
(compiled in memory), so there is no build step to forget.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES: dict[str, str] = {"nb": "Bokmål", "nn": "Nynorsk", "en": "English"}
DEFAULT_LANGUAGE = "nb"
LANGUAGE_COOKIE = "felles_lang"
LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for a language (English needs none: it is the source language)."""
    po_path = LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == "en" or not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The remembered choice first, then the browser's preference, then bokmål."""
    if cookie in LANGUAGES:
        return cookie
    for lang in _parse_accept_language(accept_language or ""):
        if lang in LANGUAGES:
            return lang
        if lang in ("no", "nb-no", "no-no"):
            return "nb"
        if lang == "nn-no":
            return "nn"
        if lang.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def _parse_accept_language(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, index, tag.lower()))
    return [tag for _, _, tag in sorted(weighted)]
