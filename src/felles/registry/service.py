"""The registry's service API: what other parts call to use the registers.

Every function that reads one person's data on behalf of someone takes an `Access`
naming who asks and why, and records it, so a citizen can later see who used their
data. Lists for operators (the CLI) do not record per person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Table,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import dialect_name, fetch_row, fetch_value, insert_row
from felles.registry.models import (
    Agency,
    ContactChange,
    ContactInfo,
    DataAccess,
    Organisation,
    Person,
    PersonEvent,
    PersonEventKind,
    Relation,
    RelationKind,
    Role,
    RoleCode,
)
from felles.registry.numbers import parse_orgnr, parse_pid
from felles.registry.schemas import (
    Address,
    AgencyRecord,
    ContactChangeRecord,
    ContactRecord,
    DataAccessRecord,
    OrganisationRecord,
    PersonEventRecord,
    PersonRecord,
    RelativeRecord,
    RoleInOrganisation,
    RoleRecord,
)


class NotFound(LookupError):
    """Nothing in the register under that number."""


class Conflict(ValueError):
    """The register already holds what was to be added."""


@dataclass(frozen=True, slots=True)
class Access:
    """Who reads a person's data and for what purpose (recorded with every lookup)."""

    accessed_by: str
    purpose: str


async def _record(session: AsyncSession, pid: str, access: Access, dataset: str) -> None:
    await insert_row(
        session,
        DataAccess,
        pid=pid,
        accessed_by=access.accessed_by,
        purpose=access.purpose,
        dataset=dataset,
    )


async def _person_row(session: AsyncSession, pid: str) -> Person:
    person = await session.get(Person, parse_pid(pid).value)
    if person is None:
        raise NotFound("No person with that national identity number")
    return person


_PEOPLE = cast(Table, Person.__table__)
_ACCESS = cast(Table, DataAccess.__table__)


def _record_lookup(found: Select[Any]) -> Insert:
    """An access row for each person `found` selects (its pid, then bound `by` and
    `why`): the hot lookups record in the same statement that reads."""
    return insert(_ACCESS).from_select(["pid", "accessed_by", "purpose", "dataset"], found)


def _lookup_values(pid: ColumnElement[Any]) -> Select[Any]:
    return select(pid, bindparam("by"), bindparam("why"), literal("person"))


def _lookup_params(number: str, access: Access) -> dict[str, Any]:
    """The bound values of a person lookup recorded by `_lookup_values`."""
    return {"b_pid": number, "by": access.accessed_by, "why": access.purpose}


def read_and_record_person(unless: Select[Any] | None = None) -> Select[Any]:
    """PostgreSQL: read a person and record the lookup in one statement (one round trip);
    the access row is written only if the person is there.

    With `unless`, a query of the caller's (say, "is this token revoked?"), the person is
    neither read nor recorded when it finds a row; the answer then always has one row,
    whose `refused` column says whether it did. Build once, at import.
    """
    found = select(_PEOPLE).where(_PEOPLE.c.pid == bindparam("b_pid"))
    if unless is not None:
        found = found.where(~exists(unless))
    found_cte = found.cte("found")
    recorded = _record_lookup(_lookup_values(found_cte.c.pid)).cte("recorded")
    if unless is None:
        return select(found_cte).add_cte(recorded)
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(exists(unless).label("refused"), *found_cte.c)
        .select_from(one.outerjoin(found_cte, true()))
        .add_cte(recorded)
    )


READ_AND_RECORD_PERSON = read_and_record_person()


class Refused(Exception):
    """A guarded lookup's `unless` query found a row: nothing was read or recorded."""


@dataclass(frozen=True)
class GuardedLookup:
    """Find a person only if the caller's `unless` query finds nothing: one statement on
    PostgreSQL (say, a token's revocation check and the profile it unlocks). Build once,
    at import: the statement is prebuilt."""

    unless: Select[Any]
    statement: Select[Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statement", read_and_record_person(self.unless))

    async def find(
        self, session: AsyncSession, pid: str, access: Access, unless_params: dict[str, Any]
    ) -> PersonRecord | None:
        """The person (None if not in the register), or Refused."""
        number = parse_pid(pid).value
        if dialect_name(session) != "postgresql":
            if await fetch_value(session, self.unless, unless_params) is not None:
                raise Refused
            return await find_person(session, number, access)
        params = {**unless_params, **_lookup_params(number, access)}
        row = await fetch_row(session, self.statement, params)
        if row is None or row["refused"]:
            raise Refused
        if row["pid"] is None:
            return None
        return PersonRecord.model_validate({k: v for k, v in row.items() if k != "refused"})


async def get_person(session: AsyncSession, pid: str, access: Access) -> PersonRecord:
    """One person from the population register."""
    number = parse_pid(pid).value
    if dialect_name(session) == "postgresql":
        params = _lookup_params(number, access)
        row = await fetch_row(session, READ_AND_RECORD_PERSON, params)
        if row is None:
            raise NotFound("No person with that national identity number")
        return PersonRecord.model_validate(dict(row))
    person = await _person_row(session, number)
    await _record(session, person.pid, access, "person")
    return PersonRecord.model_validate(person)


async def find_person(session: AsyncSession, pid: str, access: Access) -> PersonRecord | None:
    """Like get_person, but None when there is no such person."""
    try:
        return await get_person(session, pid, access)
    except NotFound:
        return None


# Writes the access row only if the person is there (built once: a hot path of logins).
RECORD_IF_PERSON = _record_lookup(
    _lookup_values(_PEOPLE.c.pid).where(_PEOPLE.c.pid == bindparam("b_pid"))
).returning(_ACCESS.c.pid)


async def person_exists(session: AsyncSession, pid: str, access: Access) -> bool:
    """Whether the register has this person, recorded like any lookup: one statement
    that writes the access row only if the person is there."""
    number = parse_pid(pid).value
    params = _lookup_params(number, access)
    recorded = await fetch_value(session, RECORD_IF_PERSON, params)
    return recorded is not None


async def relatives(
    session: AsyncSession, pid: str, access: Access, kind: RelationKind | None = None
) -> list[RelativeRecord]:
    """A person's parents, children and spouse (or only one kind)."""
    person = await _person_row(session, pid)
    query = (
        select(Relation, Person)
        .join(Person, Person.pid == Relation.related_pid)
        .where(Relation.pid == person.pid)
        .order_by(Relation.kind, Person.birth_date)
    )
    if kind is not None:
        query = query.where(Relation.kind == kind.value)
    rows = (await session.execute(query)).all()
    await _record(session, person.pid, access, f"relations:{kind.value if kind else 'all'}")
    return [
        RelativeRecord(kind=rel.kind, since=rel.since, person=PersonRecord.model_validate(other))
        for rel, other in rows
    ]


async def children(session: AsyncSession, pid: str, access: Access) -> list[PersonRecord]:
    """A person's children, eldest first."""
    return [r.person for r in await relatives(session, pid, access, RelationKind.child)]


async def history(session: AsyncSession, pid: str, access: Access) -> list[PersonEventRecord]:
    """Everything the register has recorded about a person, oldest first."""
    person = await _person_row(session, pid)
    rows = await session.scalars(
        select(PersonEvent).where(PersonEvent.pid == person.pid).order_by(PersonEvent.id)
    )
    await _record(session, person.pid, access, "history")
    return [PersonEventRecord.model_validate(e) for e in rows]


async def roles_of(session: AsyncSession, pid: str, access: Access) -> list[RoleInOrganisation]:
    """The organisations where a person holds a role: whom they may act for."""
    person = await _person_row(session, pid)
    rows = (
        await session.execute(
            select(Role, Organisation)
            .join(Organisation, Organisation.orgnr == Role.orgnr)
            .where(Role.pid == person.pid)
            .order_by(Organisation.name, Role.code)
        )
    ).all()
    await _record(session, person.pid, access, "roles")
    return [
        RoleInOrganisation(
            code=role.code, since=role.since, organisation=OrganisationRecord.model_validate(org)
        )
        for role, org in rows
    ]


async def contact(session: AsyncSession, pid: str, access: Access) -> ContactRecord | None:
    """Contact details and reservation from the contact register, None if never registered."""
    person = await _person_row(session, pid)
    row = await session.get(ContactInfo, person.pid)
    await _record(session, person.pid, access, "contact")
    return ContactRecord.model_validate(row) if row else None


async def contacts(
    session: AsyncSession, pids: list[str], access: Access
) -> dict[str, ContactRecord]:
    """Contact details of many people at once (those registered), each lookup recorded:
    for workers that notify a batch of people."""
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    rows = (await session.scalars(select(ContactInfo).where(ContactInfo.pid.in_(wanted)))).all()
    if rows:
        await session.execute(
            insert(DataAccess),
            [
                {
                    "pid": row.pid,
                    "accessed_by": access.accessed_by,
                    "purpose": access.purpose,
                    "dataset": "contact",
                }
                for row in rows
            ],
        )
    return {row.pid: ContactRecord.model_validate(row) for row in rows}


async def data_access_log(
    session: AsyncSession, pid: str, limit: int = 100, offset: int = 0
) -> list[DataAccessRecord]:
    """Who has used this person's data, newest first (for the person themself); `offset`
    skips that many of the newest, for paging."""
    person = await _person_row(session, pid)
    rows = await session.scalars(
        select(DataAccess)
        .where(DataAccess.pid == person.pid)
        .order_by(DataAccess.accessed_at.desc(), DataAccess.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [DataAccessRecord.model_validate(r) for r in rows]


async def relocate(
    session: AsyncSession, pid: str, address: Address, effective_on: date
) -> PersonRecord:
    """Move a person: the current address changes and the move is kept as an event."""
    person = await _person_row(session, pid)
    previous = {
        "street": person.street,
        "postal_code": person.postal_code,
        "postal_town": person.postal_town,
        "municipality_number": person.municipality_number,
    }
    person.street = address.street
    person.postal_code = address.postal_code
    person.postal_town = address.postal_town
    person.municipality_number = address.municipality_number
    person.municipality_name = address.municipality_name
    session.add(
        PersonEvent(
            pid=person.pid,
            kind=PersonEventKind.relocation.value,
            effective_on=effective_on,
            data={"from": previous, "to": address.as_event()},
        )
    )
    await session.flush()
    return PersonRecord.model_validate(person)


async def register_person(
    session: AsyncSession,
    person: PersonRecord,
    *,
    event: PersonEventKind = PersonEventKind.birth,
    effective_on: date | None = None,
) -> PersonRecord:
    """Add a person (born or immigrated); the event starts their history."""
    number = parse_pid(person.pid)
    if number.birth_date != person.birth_date:
        raise ValueError("The birth date does not match the national identity number")
    if await session.get(Person, number.value) is not None:
        raise Conflict("A person with that national identity number is already registered")
    session.add(Person(**person.model_dump()))
    session.add(
        PersonEvent(
            pid=number.value,
            kind=event.value,
            effective_on=effective_on or person.birth_date,
            data={"municipality_number": person.municipality_number},
        )
    )
    await session.flush()
    return person


async def add_relation(
    session: AsyncSession, pid: str, related_pid: str, kind: RelationKind, since: date | None = None
) -> None:
    """Link two people; the reverse link (child for parent, spouse for spouse) is added too."""
    a, b = (await _person_row(session, pid)).pid, (await _person_row(session, related_pid)).pid
    if a == b:
        raise ValueError("A person cannot be related to themself")
    reverse = {
        RelationKind.parent: RelationKind.child,
        RelationKind.child: RelationKind.parent,
        RelationKind.spouse: RelationKind.spouse,
    }[kind]
    session.add(Relation(pid=a, related_pid=b, kind=kind.value, since=since))
    session.add(Relation(pid=b, related_pid=a, kind=reverse.value, since=since))
    if kind is RelationKind.spouse:
        for who, other in ((a, b), (b, a)):
            session.add(
                PersonEvent(
                    pid=who,
                    kind=PersonEventKind.marriage.value,
                    effective_on=since or date.today(),
                    data={"spouse": other},
                )
            )
    await session.flush()


async def _contact_row(session: AsyncSession, pid: str) -> ContactInfo:
    person = await _person_row(session, pid)
    row = await session.get(ContactInfo, person.pid)
    if row is None:
        row = ContactInfo(pid=person.pid, reserved=False, language="nb")
        session.add(row)
    return row


def _changed(
    session: AsyncSession, row: ContactInfo, values: dict[str, Any], changed_by: str
) -> None:
    """Set `values` on the contact row, keeping every change as history."""
    at = datetime.now(UTC)
    for name, value in values.items():
        old = getattr(row, name)
        if old == value:
            continue
        session.add(
            ContactChange(
                pid=row.pid,
                field=name,
                old_value=None if old is None else str(old),
                new_value=None if value is None else str(value),
                changed_by=changed_by,
                changed_at=at,
            )
        )
        setattr(row, name, value)


async def set_contact(
    session: AsyncSession,
    pid: str,
    *,
    email: str | None,
    mobile: str | None,
    confirmed_on: date,
    language: str = "nb",
    changed_by: str = "operator",
) -> ContactRecord:
    """Record (or confirm) a person's contact details in the contact register."""
    row = await _contact_row(session, pid)
    values = {"email": email, "mobile": mobile, "last_confirmed_on": confirmed_on}
    _changed(session, row, {**values, "language": language}, changed_by)
    await session.flush()
    return ContactRecord.model_validate(row)


async def set_reservation(
    session: AsyncSession, pid: str, *, reserved: bool, on: date, changed_by: str = "operator"
) -> ContactRecord:
    """Say no (or yes again) to digital communication from the public sector."""
    row = await _contact_row(session, pid)
    _changed(
        session, row, {"reserved": reserved, "reserved_on": on if reserved else None}, changed_by
    )
    await session.flush()
    return ContactRecord.model_validate(row)


async def set_mailbox(
    session: AsyncSession,
    pid: str,
    *,
    provider: str | None,
    address: str | None,
    changed_by: str = "operator",
) -> ContactRecord:
    """Choose (or give up) a digital mailbox."""
    row = await _contact_row(session, pid)
    _changed(session, row, {"mailbox_provider": provider, "mailbox_address": address}, changed_by)
    await session.flush()
    return ContactRecord.model_validate(row)


async def contact_history(session: AsyncSession, pid: str) -> list[ContactChangeRecord]:
    """Every change to a person's contact register entry, oldest first."""
    person = await _person_row(session, pid)
    rows = await session.scalars(
        select(ContactChange)
        .where(ContactChange.pid == person.pid)
        .order_by(ContactChange.changed_at, ContactChange.id)
    )
    return [ContactChangeRecord.model_validate(r) for r in rows]


# --- Organisations ---------------------------------------------------------------------


async def get_organisation(session: AsyncSession, orgnr: str) -> OrganisationRecord:
    """One organisation from the business register (public data: not recorded)."""
    org = await session.get(Organisation, parse_orgnr(orgnr))
    if org is None:
        raise NotFound("No organisation with that organisation number")
    return OrganisationRecord.model_validate(org)


async def register_organisation(
    session: AsyncSession, organisation: OrganisationRecord
) -> OrganisationRecord:
    """Add an organisation to the business register."""
    orgnr = parse_orgnr(organisation.orgnr)
    if await session.get(Organisation, orgnr) is not None:
        raise Conflict("An organisation with that organisation number is already registered")
    session.add(Organisation(**organisation.model_dump()))
    await session.flush()
    return organisation


async def add_role(
    session: AsyncSession, orgnr: str, pid: str, code: RoleCode, since: date
) -> RoleRecord:
    """Give a person a role in an organisation (general manager, board chair, ...)."""
    org = await session.get(Organisation, parse_orgnr(orgnr))
    if org is None:
        raise NotFound("No organisation with that organisation number")
    person = await _person_row(session, pid)
    role = Role(orgnr=org.orgnr, pid=person.pid, code=code.value, since=since)
    session.add(role)
    await session.flush()
    return RoleRecord.model_validate(role)


async def roles_in(session: AsyncSession, orgnr: str) -> list[RoleRecord]:
    """Everyone with a role in an organisation (the public role register)."""
    rows = await session.scalars(
        select(Role).where(Role.orgnr == parse_orgnr(orgnr)).order_by(Role.code, Role.pid)
    )
    return [RoleRecord.model_validate(r) for r in rows]


async def list_people(
    session: AsyncSession, *, limit: int = 20, offset: int = 0, reserved: bool | None = None
) -> list[PersonRecord]:
    """People in register order (for operators and the demo; nothing is recorded)."""
    query = select(Person).order_by(Person.family_name, Person.given_name, Person.pid)
    if reserved is not None:
        query = query.join(ContactInfo, ContactInfo.pid == Person.pid).where(
            ContactInfo.reserved.is_(reserved)
        )
    rows = await session.scalars(query.limit(limit).offset(offset))
    return [PersonRecord.model_validate(p) for p in rows]


async def list_organisations(
    session: AsyncSession, *, limit: int = 50, offset: int = 0, form: str | None = None
) -> list[OrganisationRecord]:
    query = select(Organisation).order_by(Organisation.name, Organisation.orgnr)
    if form is not None:
        query = query.where(Organisation.form == form)
    rows = await session.scalars(query.limit(limit).offset(offset))
    return [OrganisationRecord.model_validate(o) for o in rows]


async def list_agencies(session: AsyncSession) -> list[AgencyRecord]:
    rows = await session.scalars(select(Agency).order_by(Agency.level, Agency.slug))
    return [AgencyRecord.model_validate(a) for a in rows]


async def get_agency(session: AsyncSession, slug_or_orgnr: str) -> AgencyRecord:
    row = await session.scalar(
        select(Agency).where((Agency.slug == slug_or_orgnr) | (Agency.orgnr == slug_or_orgnr))
    )
    if row is None:
        raise NotFound("No agency by that name or number")
    return AgencyRecord.model_validate(row)


async def agency_name(session: AsyncSession, orgnr: str, lang: str) -> str:
    """An agency's name in a language, or its number if it is not a registered agency."""
    try:
        return (await get_agency(session, orgnr)).name(lang)
    except NotFound:
        return orgnr


async def counts(session: AsyncSession) -> dict[str, int]:
    """How many rows each register holds (for the front page and health checks)."""
    result: dict[str, int] = {}
    for name, model in (
        ("persons", Person),
        ("organisations", Organisation),
        ("roles", Role),
        ("contacts", ContactInfo),
        ("agencies", Agency),
    ):
        result[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    result["reserved"] = int(
        await session.scalar(
            select(func.count()).select_from(ContactInfo).where(ContactInfo.reserved.is_(True))
        )
        or 0
    )
    return result
