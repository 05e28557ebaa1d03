"""Small things several portal pages show the same way: dates in Norwegian time in the
person's language, agency and service names, levels of assurance and roles in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from babel.dates import format_date, format_time
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal.catalogue import ServiceNotFound
from felles.portal.catalogue import definition as definition_of
from felles.portal.definition import ServiceDefinition
from felles.registry import service as registry
from felles.web.templating import BABEL_LOCALES, LOCAL_TIME, aware


def N_(text: str) -> str:
    """Marks a string for extraction; it is translated when the page is rendered."""
    return text


@dataclass(frozen=True, slots=True)
class Moment:
    iso: str  # for <time datetime>
    text: str  # in the person's language, Norwegian time


def moment(value: datetime, lang: str, *, with_time: bool = True) -> Moment:
    local = aware(value).astimezone(LOCAL_TIME)
    locale = BABEL_LOCALES.get(lang, "nb")
    text = format_date(local, "long", locale=locale)
    if with_time:
        text += ", " + format_time(local, "short", locale=locale)
    return Moment(local.isoformat(timespec="minutes"), text)


# What each role code is, in plain words (translated on the page).
ROLE_NAMES = {
    "DAGL": N_("general manager"),
    "LEDE": N_("chair of the board"),
    "MEDL": N_("board member"),
    "REGN": N_("accountant"),
    "INNH": N_("owner"),
}

LEVEL_WORDS = {
    "idporten-loa-substantial": N_(
        "Log in with MinID, BankID or another login at level substantial."
    ),
    "idporten-loa-high": N_("Log in with BankID or another login at level high."),
}


class Names:
    """Agency and service names for one page, each looked up once."""

    def __init__(self, session: AsyncSession, lang: str) -> None:
        self.session = session
        self.lang = lang
        self._agencies: dict[str, str] = {}
        self._services: dict[tuple[str, int], ServiceDefinition | None] = {}

    async def agency(self, orgnr: str | None) -> str:
        if not orgnr:
            return ""
        if orgnr not in self._agencies:
            try:
                found = await registry.get_agency(self.session, orgnr)
                self._agencies[orgnr] = found.name(self.lang)
            except registry.NotFound:
                try:
                    org = await registry.get_organisation(self.session, orgnr)
                    self._agencies[orgnr] = org.name
                except registry.NotFound:
                    self._agencies[orgnr] = orgnr
        return self._agencies[orgnr]

    async def definition(self, code: str, version: int) -> ServiceDefinition | None:
        if (code, version) not in self._services:
            try:
                self._services[(code, version)] = await definition_of(self.session, code, version)
            except ServiceNotFound:
                self._services[(code, version)] = None
        return self._services[(code, version)]

    async def service(self, code: str | None, version: int | None) -> str:
        if not code or version is None:
            return ""
        found = await self.definition(code, version)
        return found.name(self.lang) if found else code
