"""Extract user-visible strings and update the nb/nn catalogs (`make messages`).

Uses Babel's API directly: pybabel's config file cannot name Jinja2's extractor, which
no longer registers itself as a plug-in.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent / "src" / "felles"
LOCALES = ROOT / "web" / "locales"
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]


def extract() -> Catalog:
    template = Catalog(project="Felles", version="0.1", charset="utf-8")
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT, method_map=METHODS, keywords=keywords
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def main() -> None:
    template = extract()
    with (LOCALES / "messages.pot").open("wb") as handle:
        write_po(handle, template, omit_header=True, no_location=True, sort_output=True)
    for lang in ("nb", "nn"):
        path = LOCALES / lang / "LC_MESSAGES" / "messages.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=lang)
        else:
            catalog = Catalog(locale=lang)
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as handle:
            write_po(
                handle, catalog, no_location=True, sort_output=True, ignore_obsolete=True,
                width=100,
            )
        missing = sum(1 for m in catalog if m.id and not m.string)
        print(f"{lang}: {len(catalog)} messages, {missing} untranslated")


if __name__ == "__main__":
    main()
