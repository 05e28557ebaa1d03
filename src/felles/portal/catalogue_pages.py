"""The catalogue of services: what agencies offer, who can use it and how to log in,
with a search box (GET `q`). Open to everyone, logged in or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from felles.portal import catalogue
from felles.portal.display import LEVEL_WORDS, ROLE_NAMES, Names
from felles.portal.web import current, page
from felles.web.i18n import translations
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)


def either(words: list[str], gettext: Callable[[str], str]) -> str:
    """ "a", "a or b", "a, b or c" in the page's language."""
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " " + gettext("or") + " " + words[-1]


@router.get("/portal/services")
async def services(request: Request, q: Annotated[str, Query(max_length=500)] = "") -> Response:
    rt, session = await current(request)
    lang = request_language(request)
    query = " ".join(q.split())[:200]
    gettext = translations(lang).gettext
    rows: list[dict[str, Any]] = []
    async with rt.db.session() as db:
        names = Names(db, lang)
        for entry in await catalogue.search(db, query):
            found = entry.definition
            rows.append(
                {
                    "code": entry.code,
                    "name": found.name(lang),
                    "description": found.description(lang),
                    "agency": await names.agency(entry.owner_orgnr),
                    "persons": found.audience.persons,
                    "roles": either(
                        [gettext(ROLE_NAMES.get(r.value, r.value)) for r in found.audience.roles],
                        gettext,
                    ),
                    "delegable": bool(found.audience.roles) and found.audience.delegable,
                    "level": LEVEL_WORDS.get(found.level, found.level),
                }
            )
    return page(request, rt, session, "portal/services.html", {"rows": rows, "query": query})
