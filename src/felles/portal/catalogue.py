"""Publishing services and finding them: the catalogue of what agencies offer.

Published versions never change; a draft keeps the version it was started on, so an
agency can publish a new version without breaking forms people are filling in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal.definition import DefinitionError, ServiceDefinition, parse
from felles.portal.models import Service, ServiceVersion
from felles.registry import service as registry


class ServiceNotFound(LookupError):
    """No published service by that code (or it was withdrawn)."""


@dataclass(frozen=True, slots=True)
class Published:
    code: str
    version: int
    owner_orgnr: str
    created: bool  # False: this exact version was already published (a harmless retry)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    code: str
    version: int
    owner_orgnr: str
    definition: ServiceDefinition


def now() -> datetime:
    return datetime.now(UTC)


def _search_text(definition: ServiceDefinition, agency_names: list[str]) -> str:
    parts = [definition.code, *definition.keywords, *agency_names]
    for text in (definition.name, definition.description):
        parts += [text.nb, text.nn, text.en]
    return " ".join(parts).lower()


async def publish(
    session: AsyncSession, document: dict[str, Any], *, published_by: str
) -> Published:
    """Validate and publish a definition. The owner is an agency's slug or number; an
    agency publishing over the API may only publish its own services (checked by the API).
    Re-publishing an identical version is a no-op; changing a published version is not."""
    definition = parse(document)
    try:
        agency = await registry.get_agency(session, definition.owner)
    except registry.NotFound:
        raise DefinitionError([f"owner: no agency {definition.owner!r}"]) from None
    stored = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    existing = await session.get(ServiceVersion, (definition.code, definition.version))
    if existing is not None:
        if existing.definition != stored or existing.owner_orgnr != agency.orgnr:
            raise DefinitionError(
                [f"version: {definition.version} is published already; publish a new version"]
            )
        return Published(definition.code, definition.version, agency.orgnr, created=False)
    current = await session.get(Service, definition.code)
    if current is not None and current.owner_orgnr != agency.orgnr:
        raise DefinitionError([f"code: {definition.code!r} belongs to another agency"])
    if current is not None and definition.version < current.current_version:
        raise DefinitionError(
            [f"version: must be higher than the current version {current.current_version}"]
        )
    at = now()
    session.add(
        ServiceVersion(
            code=definition.code,
            version=definition.version,
            owner_orgnr=agency.orgnr,
            definition=stored,
            published_at=at,
            published_by=published_by,
        )
    )
    names = [agency.name_nb, agency.name_nn, agency.name_en]
    if current is None:
        session.add(
            Service(
                code=definition.code,
                owner_orgnr=agency.orgnr,
                current_version=definition.version,
                search_text=_search_text(definition, names),
                published_at=at,
            )
        )
    else:
        current.current_version = definition.version
        current.search_text = _search_text(definition, names)
        current.published_at = at
        current.withdrawn_at = None
    await session.flush()
    return Published(definition.code, definition.version, agency.orgnr, created=True)


async def withdraw(session: AsyncSession, code: str, owner_orgnr: str) -> None:
    """Take a service out of the catalogue; drafts and submissions stay."""
    service = await session.get(Service, code)
    if service is None or service.owner_orgnr != owner_orgnr or service.withdrawn_at:
        raise ServiceNotFound(code)
    service.withdrawn_at = now()


@dataclass(frozen=True, slots=True)
class Version:
    """A published version, parsed: what drafts, submissions and receipts need."""

    definition: ServiceDefinition
    owner_orgnr: str
    # The document as published (what a receipt renderer in another process parses).
    document: dict[str, Any]


# Published versions never change, so each process keeps the ones it has read, per
# database (a process may talk to more than one, as tests and benchmarks do).
_versions: dict[tuple[str, str, int], Version] = {}
MAX_CACHED = 2048


async def version(session: AsyncSession, code: str, number: int) -> Version:
    """One published version (also of a withdrawn service: drafts and receipts need it),
    read from the database once per process."""
    key = (str(session.get_bind().engine.url), code, number)
    found = _versions.get(key)
    if found is not None:
        return found
    row = await session.get(ServiceVersion, (code, number))
    if row is None:
        raise ServiceNotFound(code)
    found = Version(
        ServiceDefinition.model_validate(row.definition), row.owner_orgnr, row.definition
    )
    if len(_versions) >= MAX_CACHED:
        _versions.clear()
    _versions[key] = found
    return found


async def definition(session: AsyncSession, code: str, number: int) -> ServiceDefinition:
    """One published version's definition (see `version`)."""
    return (await version(session, code, number)).definition


async def current(session: AsyncSession, code: str) -> CatalogueEntry:
    """The current version of a service that is in the catalogue."""
    service = await session.get(Service, code)
    if service is None or service.withdrawn_at is not None:
        raise ServiceNotFound(code)
    found = await definition(session, code, service.current_version)
    return CatalogueEntry(code, service.current_version, service.owner_orgnr, found)


async def search(
    session: AsyncSession, query: str = "", *, limit: int = 100
) -> list[CatalogueEntry]:
    """Services in the catalogue whose names, descriptions, keywords or agency match every
    word of `query` (any language, any case); all of them for an empty query."""
    statement = select(Service).where(Service.withdrawn_at.is_(None))
    for word in query.lower().split()[:10]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Service.search_text.like(f"%{escaped}%", escape="\\"))
    rows = (await session.scalars(statement.order_by(Service.code).limit(limit))).all()
    return [
        CatalogueEntry(
            row.code,
            row.current_version,
            row.owner_orgnr,
            await definition(session, row.code, row.current_version),
        )
        for row in rows
    ]
