"""Every user-visible string is translated into bokmål and nynorsk, and catalogs are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from felles.web.i18n import LOCALES_DIR, pick_language, translations

ROOT = Path(__file__).resolve().parents[2]


def _load_messages_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("messages", ROOT / "scripts" / "messages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lang", ["nb", "nn"])
def test_catalog_translates_every_string_in_the_source(lang: str) -> None:
    source = {m.id for m in _load_messages_script().extract() if m.id}
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(source - {k for k, v in translated.items() if v})
    assert not missing, f"untranslated in {lang} (run `make messages` and translate): {missing}"


def test_nynorsk_differs_from_bokmal_where_it_should() -> None:
    nb, nn = translations("nb"), translations("nn")
    assert nb.gettext("Go to the front page") == "Gå til forsiden"
    assert nn.gettext("Go to the front page") == "Gå til framsida"
    assert translations("en").gettext("Go to the front page") == "Go to the front page"


def test_unknown_language_falls_back_to_bokmal() -> None:
    assert pick_language("xx", None) == "nb"
    assert pick_language(None, "sv-SE,da;q=0.9") == "nb"
    assert pick_language("en", "nn") == "en"
