"""The registry's service API against the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import random
from datetime import date

import pytest
from sqlalchemy import func, select

from felles.db import Database
from felles.registry import service
from felles.registry.models import DataAccess, PersonEvent, RelationKind, RoleCode
from felles.registry.numbers import InvalidNumber, synthetic_orgnr, synthetic_pid
from felles.registry.schemas import Address, OrganisationRecord, PersonRecord

ACCESS = service.Access(accessed_by="portal", purpose="prefill tax form")
rng = random.Random()


def new_person(
    born: date, given: str = "Kari", family: str = "Nordmann", **extra: object
) -> PersonRecord:
    values: dict[str, object] = {
        "pid": synthetic_pid(born, rng),
        "given_name": given,
        "middle_name": None,
        "family_name": family,
        "birth_date": born,
        "sex": "F",
        "citizenship": "NO",
        "street": "Storgata 1",
        "postal_code": "0155",
        "postal_town": "OSLO",
        "municipality_number": "0301",
        "municipality_name": "Oslo",
        "deceased_on": None,
    }
    values.update(extra)
    return PersonRecord.model_validate(values)


async def test_a_family_can_be_registered_and_read_back(db: Database) -> None:
    async with db.session() as s:
        mother = await service.register_person(s, new_person(date(1980, 3, 4)))
        father = await service.register_person(s, new_person(date(1979, 7, 1), "Ola", sex="M"))
        child = await service.register_person(s, new_person(date(2012, 5, 6), "Nora"))
        await service.add_relation(s, mother.pid, father.pid, RelationKind.spouse, date(2008, 6, 1))
        await service.add_relation(s, child.pid, mother.pid, RelationKind.parent)
        await service.add_relation(s, child.pid, father.pid, RelationKind.parent)

    async with db.session() as s:
        kids = await service.children(s, mother.pid, ACCESS)
        assert [k.pid for k in kids] == [child.pid]
        parents = await service.relatives(s, child.pid, ACCESS, RelationKind.parent)
        assert {p.person.pid for p in parents} == {mother.pid, father.pid}
        spouse = await service.relatives(s, father.pid, ACCESS, RelationKind.spouse)
        assert [r.person.pid for r in spouse] == [mother.pid]
        assert spouse[0].since == date(2008, 6, 1)
        person = await service.get_person(s, mother.pid, ACCESS)
        assert person.full_name == "Kari Nordmann"
        assert person.age_on(date(2026, 3, 3)) == 45
        assert person.age_on(date(2026, 3, 4)) == 46


async def test_every_lookup_is_recorded_for_the_person_to_see(db: Database) -> None:
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1990, 1, 2)))
    async with db.session() as s:
        await service.get_person(s, person.pid, ACCESS)
        await service.contact(s, person.pid, service.Access("mailbox", "deliver letter"))
        await service.roles_of(s, person.pid, ACCESS)
    async with db.session() as s:
        log = await service.data_access_log(s, person.pid)
    assert {(e.accessed_by, e.purpose, e.dataset) for e in log} == {
        ("portal", "prefill tax form", "person"),
        ("mailbox", "deliver letter", "contact"),
        ("portal", "prefill tax form", "roles"),
    }


async def test_relocation_keeps_history_instead_of_overwriting(db: Database) -> None:
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1985, 10, 10)))
        moved = await service.relocate(
            s,
            person.pid,
            Address("Kaigaten 2", "5015", "BERGEN", "4601", "Bergen"),
            date(2024, 8, 1),
        )
    assert moved.municipality_name == "Bergen"
    async with db.session() as s:
        events = await service.history(s, person.pid, ACCESS)
    assert [e.kind for e in events] == ["birth", "relocation"]
    assert events[1].data["from"]["street"] == "Storgata 1"
    assert events[1].data["to"]["street"] == "Kaigaten 2"
    assert events[1].effective_on == date(2024, 8, 1)


async def test_roles_say_whom_a_person_may_act_for(db: Database) -> None:
    orgnr = synthetic_orgnr(rng)
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1970, 2, 2)))
        await service.register_organisation(
            s,
            OrganisationRecord(
                orgnr=orgnr,
                name="Fjordlys Bygg AS",
                form="AS",
                industry_code="41.200",
                street="Bryggen 1",
                postal_code="5003",
                postal_town="BERGEN",
                municipality_number="4601",
                registered_on=date(2015, 1, 1),
                parent_orgnr=None,
            ),
        )
        await service.add_role(s, orgnr, person.pid, RoleCode.DAGL, date(2015, 1, 1))
        await service.add_role(s, orgnr, person.pid, RoleCode.LEDE, date(2016, 1, 1))
    async with db.session() as s:
        roles = await service.roles_of(s, person.pid, ACCESS)
        assert {(r.code, r.organisation.orgnr) for r in roles} == {
            ("DAGL", orgnr),
            ("LEDE", orgnr),
        }
        assert {r.pid for r in await service.roles_in(s, orgnr)} == {person.pid}
        assert (await service.get_organisation(s, orgnr)).name == "Fjordlys Bygg AS"


async def test_contact_register_and_reservation(db: Database) -> None:
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1960, 12, 24)))
        assert await service.contact(s, person.pid, ACCESS) is None
        await service.set_contact(
            s,
            person.pid,
            email="kari@example.no",
            mobile="+4791234567",
            confirmed_on=date(2026, 1, 5),
        )
        reserved = await service.set_reservation(s, person.pid, reserved=True, on=date(2026, 2, 1))
    assert reserved.reserved and reserved.reserved_on == date(2026, 2, 1)
    assert reserved.email == "kari@example.no"
    async with db.session() as s:
        contact = await service.contact(s, person.pid, ACCESS)
        assert contact is not None and contact.reserved
        again = await service.set_reservation(s, person.pid, reserved=False, on=date(2026, 3, 1))
        assert not again.reserved and again.reserved_on is None
        only_reserved = await service.list_people(s, limit=100_000, reserved=True)
        assert person.pid not in {p.pid for p in only_reserved}


async def test_every_contact_change_is_kept_as_history(db: Database) -> None:
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1972, 5, 17)))
        await service.set_contact(
            s, person.pid, email="ola@example.no", mobile=None, confirmed_on=date(2026, 1, 5)
        )
        await service.set_contact(
            s,
            person.pid,
            email="ola.nordmann@example.no",
            mobile=None,
            confirmed_on=date(2026, 6, 1),
            changed_by="person",
        )
        await service.set_mailbox(
            s, person.pid, provider="felles", address="ola#1234", changed_by="person"
        )
        await service.set_reservation(
            s, person.pid, reserved=True, on=date(2026, 7, 1), changed_by="person"
        )
        history = await service.contact_history(s, person.pid)
    emails = [(c.old_value, c.new_value) for c in history if c.field == "email"]
    assert emails == [(None, "ola@example.no"), ("ola@example.no", "ola.nordmann@example.no")]
    assert [c.field for c in history if c.changed_by == "person"] == [
        "email", "last_confirmed_on", "mailbox_provider", "mailbox_address", "reserved",
        "reserved_on",
    ]  # fmt: skip
    assert not any(c.field == "mobile" for c in history), "unchanged values make no history"


async def test_bad_numbers_and_unknown_people_are_rejected_without_side_effects(
    db: Database,
) -> None:
    async with db.session() as s:
        before = await s.scalar(select(func.count()).select_from(DataAccess))
        with pytest.raises(InvalidNumber):
            await service.get_person(s, "12345678901", ACCESS)
        with pytest.raises(InvalidNumber):
            await service.get_organisation(s, "123")
        unknown = synthetic_pid(date(1901, 1, 1), rng)
        with pytest.raises(service.NotFound):
            await service.get_person(s, unknown, ACCESS)
        assert await service.find_person(s, unknown, ACCESS) is None
        after = await s.scalar(select(func.count()).select_from(DataAccess))
    assert before == after


async def test_duplicates_and_mismatched_birth_dates_are_refused(db: Database) -> None:
    person = new_person(date(2001, 4, 4))
    async with db.session() as s:
        await service.register_person(s, person)
    with pytest.raises(service.Conflict):
        async with db.session() as s:
            await service.register_person(s, person)
    wrong_date = person.model_copy(update={"birth_date": date(2001, 4, 5)})
    with pytest.raises(ValueError, match="birth date"):
        async with db.session() as s:
            await service.register_person(s, wrong_date)
    async with db.session() as s:
        births = await s.scalar(
            select(func.count()).select_from(PersonEvent).where(PersonEvent.pid == person.pid)
        )
    assert births == 1  # the refused attempts left nothing behind


async def test_counts_cover_every_register(db: Database) -> None:
    async with db.session() as s:
        counts = await service.counts(s)
    assert set(counts) == {"persons", "organisations", "roles", "contacts", "agencies", "reserved"}
    assert counts["persons"] >= 1


async def test_person_exists_records_the_lookup_only_for_real_people(db: Database) -> None:
    async with db.session() as s:
        person = await service.register_person(s, new_person(date(1975, 6, 7)))
    unknown = synthetic_pid(date(1902, 2, 2), rng)
    check = service.Access("identity", "TestID login")
    async with db.session() as s:
        assert await service.person_exists(s, person.pid, check)
        assert not await service.person_exists(s, unknown, check)
        with pytest.raises(InvalidNumber):
            await service.person_exists(s, "123", check)
    async with db.session() as s:
        log = await service.data_access_log(s, person.pid)
        assert [(e.accessed_by, e.dataset) for e in log] == [("identity", "person")]
        nothing = await s.scalar(
            select(func.count()).select_from(DataAccess).where(DataAccess.pid == unknown)
        )
    assert nothing == 0
