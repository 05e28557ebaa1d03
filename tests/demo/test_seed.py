"""The synthetic country: deterministic, valid numbers, consistent families, all-or-nothing."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from felles.config import Settings
from felles.db import Database
from felles.demo import data, service
from felles.demo.generate import REFERENCE_DATE, Country, generate_country, iter_country
from felles.demo.service import DemoError, SeedSummary, seed_country, seed_if_empty
from felles.registry import service as registry
from felles.registry.models import Person
from felles.registry.numbers import PidKind, parse_orgnr, parse_pid
from tests.conftest import DEMO_PERSONS, DEMO_SEED, felles_command, felles_env

BACKEND = os.environ.get("FELLES_TEST_BACKEND", "sqlite")
PG_ADMIN_URL = os.environ.get("FELLES_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
INVERSE = {"parent": "child", "child": "parent", "spouse": "spouse"}
ADDRESS = ("street", "postal_code", "postal_town", "municipality_number")


# --- helpers ---------------------------------------------------------------------------


@contextmanager
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """A URL for a new, empty database of the backend under test (dropped afterwards)."""
    if BACKEND != "postgresql":
        yield f"sqlite+aiosqlite:///{tmp_path / f'demo-{secrets.token_hex(3)}.db'}"
        return
    import psycopg

    name = f"felles_demo_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fresh_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A new, migrated, empty database."""
    with fresh_url(tmp_path) as url:
        database = Database(url)
        await database.upgrade()
        try:
            yield database
        finally:
            await database.dispose()


async def register_counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return await registry.counts(session)


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every register table's rows in primary-key order, for byte-for-byte comparison."""
    order = {
        "registry_person": "pid",
        "registry_person_event": "id",
        "registry_relation": "pid, related_pid, kind",
        "registry_organisation": "orgnr",
        "registry_role": "id",
        "registry_contact": "pid",
        "registry_agency": "orgnr",
    }
    async with db.engine.connect() as conn:
        return {
            table: [
                tuple(row)
                for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
            ]
            for table, key in order.items()
        }


def years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age(born: date) -> int:
    ref = REFERENCE_DATE
    return ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))


@pytest.fixture(scope="module")
def country() -> Country:
    return generate_country(3000, 11)


@pytest.fixture(scope="module")
def people(country: Country) -> dict[str, dict[str, Any]]:
    return {p["pid"]: p for p in country.persons}


# --- the generator (pure, no database) ---------------------------------------------------


def test_same_seed_gives_the_same_country_and_another_seed_another() -> None:
    first = generate_country(400, 5)
    assert first == generate_country(400, 5)
    other = generate_country(400, 6)
    assert {p["pid"] for p in first.persons} != {p["pid"] for p in other.persons}


def test_chunking_does_not_change_the_country() -> None:
    whole = generate_country(1200, 3)
    parts = Country()
    chunks = list(iter_country(1200, 3, chunk_persons=5000))
    for chunk in chunks:
        parts.extend(chunk)
    assert parts == whole
    assert len(list(iter_country(1200, 3, chunk_persons=300))) >= 4


@pytest.mark.parametrize("persons", [1, 2, 3, 5, 17, 250])
def test_exactly_the_number_of_people_asked_for(persons: int) -> None:
    made = generate_country(persons, persons)
    assert len(made.persons) == persons
    assert len(made.agencies) == len(data.AGENCIES)


def test_every_pid_is_a_valid_unique_synthetic_number(country: Country) -> None:
    pids = [p["pid"] for p in country.persons]
    assert len(pids) == len(set(pids))
    kinds: Counter[PidKind] = Counter()
    for person in country.persons:
        number = parse_pid(person["pid"])
        assert number.synthetic
        assert number.birth_date == person["birth_date"]
        assert (int(person["pid"][8]) % 2 == 0) == (person["sex"] == "F")
        kinds[number.kind] += 1
        if number.kind is PidKind.d_number:
            assert person["citizenship"] != "NO"
    assert 0 < kinds[PidKind.d_number] < 0.05 * len(pids)


def test_every_orgnr_is_valid_unique_and_starts_with_3(country: Country) -> None:
    orgnrs = [o["orgnr"] for o in country.organisations]
    assert len(orgnrs) == len(set(orgnrs))
    for orgnr in orgnrs:
        assert parse_orgnr(orgnr) == orgnr
        assert orgnr.startswith("3")
    names = [o["name"] for o in country.organisations]
    assert len(names) == len(set(names))


def test_relations_are_symmetric_and_point_at_people(
    country: Country, people: dict[str, dict[str, Any]]
) -> None:
    links = {(r["pid"], r["related_pid"], r["kind"]): r["since"] for r in country.relations}
    assert len(links) == len(country.relations)
    for (pid, related, kind), since in links.items():
        assert pid in people and related in people and pid != related
        assert links[(related, pid, INVERSE[kind])] == since
    kinds = Counter(kind for _, _, kind in links)
    assert kinds["spouse"] > 100 and kinds["parent"] > 500


def test_children_were_born_when_their_parents_were_20_to_45(
    country: Country, people: dict[str, dict[str, Any]]
) -> None:
    for rel in country.relations:
        if rel["kind"] != "parent":
            continue
        child, parent = people[rel["pid"]], people[rel["related_pid"]]
        assert years_after(parent["birth_date"], 20) <= child["birth_date"]
        assert child["birth_date"] < years_after(parent["birth_date"], 45)
        assert rel["since"] == child["birth_date"]


def test_families_share_an_address(country: Country, people: dict[str, dict[str, Any]]) -> None:
    parents_of: dict[str, list[str]] = defaultdict(list)
    for rel in country.relations:
        if rel["kind"] == "spouse":
            a, b = people[rel["pid"]], people[rel["related_pid"]]
            assert [a[k] for k in ADDRESS] == [b[k] for k in ADDRESS]
        elif rel["kind"] == "parent":
            parents_of[rel["pid"]].append(rel["related_pid"])
    minors = [p for p in country.persons if age(p["birth_date"]) < 18]
    assert minors
    for child in minors:
        assert parents_of[child["pid"]], "every child has at least one parent in the register"
        for parent in parents_of[child["pid"]]:
            assert [people[parent][k] for k in ADDRESS] == [child[k] for k in ADDRESS]
    three_generations = [
        pid for pid, parents in parents_of.items() if any(parents_of.get(p) for p in parents)
    ]
    assert three_generations, "some families span grandparents to grandchildren"


def test_history_ends_at_the_current_address(
    country: Country, people: dict[str, dict[str, Any]]
) -> None:
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in country.events:
        events[event["pid"]].append(event)
    assert set(events) == set(people)
    moved = 0
    for pid, history in events.items():
        person = people[pid]
        assert history[0]["kind"] == "birth"
        assert history[0]["effective_on"] == person["birth_date"]
        assert [e["kind"] for e in history].count("birth") == 1
        days = [e["effective_on"] for e in history]
        assert days == sorted(days) and days[-1] < REFERENCE_DATE
        relocations = [e["data"] for e in history if e["kind"] == "relocation"]
        current = {k: person[k] for k in ADDRESS}
        if relocations:
            moved += 1
            assert relocations[-1]["to"] == current
            for before, after in pairwise(relocations):
                assert after["from"] == before["to"]
        arrived = [e["data"] for e in history if e["kind"] == "immigration"]
        start = arrived[0] if arrived else history[0]["data"]
        if relocations and start.get("municipality_number"):
            assert relocations[0]["from"]["municipality_number"] == start["municipality_number"]
        elif not relocations and start.get("municipality_number"):
            assert start["municipality_number"] == person["municipality_number"]
    assert moved > 0.5 * len(people)
    assert sum(1 for e in country.events if e["kind"] == "immigration") > 0.05 * len(people)


def test_people_look_like_a_population(country: Country) -> None:
    persons = country.persons
    ages = [age(p["birth_date"]) for p in persons]
    assert min(ages) == 0 and 90 <= max(ages) <= 100
    assert 0.15 < sum(a < 18 for a in ages) / len(ages) < 0.30
    assert 0.05 < sum(a >= 67 for a in ages) / len(ages) < 0.25
    sexes = Counter(p["sex"] for p in persons)
    assert 0.45 < sexes["F"] / len(persons) < 0.55
    citizenship = Counter(p["citizenship"] for p in persons)
    assert 0.84 < citizenship["NO"] / len(persons) < 0.95
    assert len(citizenship) >= 8
    assert len({p["given_name"] for p in persons}) > 250
    assert len({p["family_name"] for p in persons}) > 200
    assert sum(1 for p in persons if p["middle_name"]) > 0.05 * len(persons)
    known = {m[0]: m[1] for m in data.MUNICIPALITIES}
    for person in persons:
        assert known[person["municipality_number"]] == person["municipality_name"]
        assert re.fullmatch(r"\d{4}", person["postal_code"])
        assert re.fullmatch(r".+ \d+[A-C]?", person["street"])
    top = Counter(p["municipality_name"] for p in persons).most_common(3)
    assert top[0][0] == "Oslo" and {"Bergen", "Trondheim"} & {name for name, _ in top}


def test_contact_register_shares(country: Country, people: dict[str, dict[str, Any]]) -> None:
    adults = {pid for pid, p in people.items() if age(p["birth_date"]) >= 18}
    contacts = {c["pid"]: c for c in country.contacts}
    assert set(contacts) <= adults, "children have no contact entry"
    assert 0.85 < len(contacts) / len(adults) < 0.95
    reserved = [c for c in contacts.values() if c["reserved"]]
    assert 0.05 < len(reserved) / len(adults) < 0.11
    for entry in contacts.values():
        if entry["reserved"]:
            assert entry["reserved_on"] is not None and entry["mailbox_provider"] is None
        else:
            assert entry["reserved_on"] is None and (entry["email"] or entry["mobile"])
        if entry["email"]:
            assert re.fullmatch(r"[a-z0-9.\-]+@example\.(no|com|org|net)", entry["email"])
        if entry["mobile"]:
            assert re.fullmatch(r"\+47 [49]\d{7}", entry["mobile"])
        if entry["last_confirmed_on"]:
            assert (
                REFERENCE_DATE - timedelta(days=731) <= entry["last_confirmed_on"] < REFERENCE_DATE
            )
    emails = [c["email"] for c in contacts.values() if c["email"]]
    assert len(emails) == len(set(emails))
    providers = Counter(c["mailbox_provider"] for c in contacts.values() if not c["reserved"])
    assert {"felles", "digipost", "eboks"} <= set(providers)
    assert providers[None] < 0.25 * sum(providers.values())
    languages = Counter(c["language"] for c in contacts.values())
    assert languages["nb"] > 0.7 * len(contacts) and languages["nn"] and languages["en"]


def test_businesses_and_roles(country: Country, people: dict[str, dict[str, Any]]) -> None:
    organisations = {o["orgnr"]: o for o in country.organisations}
    agencies = {a["orgnr"] for a in country.agencies}
    businesses = [o for o in organisations.values() if o["orgnr"] not in agencies]
    assert abs(len(businesses) - len(people) / 15) <= 2
    forms = Counter(o["form"] for o in businesses)
    assert (
        forms["ENK"] > 50
        and forms["AS"] > 50
        and forms["FLI"]
        and {"ASA", "SA", "STI"} & set(forms)
    )
    roles_by_org: dict[str, Counter[str]] = defaultdict(Counter)
    orgs_of: dict[str, set[str]] = defaultdict(set)
    keys = set()
    for role in country.roles:
        key = (role["orgnr"], role["pid"], role["code"])
        assert key not in keys
        keys.add(key)
        holder, org = people[role["pid"]], organisations[role["orgnr"]]
        assert role["since"] >= years_after(holder["birth_date"], 18)
        assert org["registered_on"] <= role["since"] < REFERENCE_DATE
        roles_by_org[role["orgnr"]][role["code"]] += 1
        orgs_of[role["pid"]].add(role["orgnr"])
    for org in businesses:
        roles = roles_by_org[org["orgnr"]]
        assert re.fullmatch(r"\d{2}\.\d{3}", org["industry_code"])
        if org["form"] == "ENK":
            assert roles == Counter(INNH=1)
        elif org["form"] in ("AS", "ASA"):
            assert roles["DAGL"] == 1 and roles["LEDE"] == 1 and org["name"].endswith(org["form"])
        else:
            assert roles["LEDE"] == 1
    assert sum(1 for orgs in orgs_of.values() if len(orgs) > 1) > 10


def test_agencies(country: Country) -> None:
    organisations = {o["orgnr"]: o for o in country.organisations}
    agencies = {a["slug"]: a for a in country.agencies}
    assert {"skatteetaten", "nav", "digdir", "oslo-kommune", "bergen-kommune"} <= set(agencies)
    tax = agencies["skatteetaten"]
    assert (tax["name_nb"], tax["name_nn"], tax["name_en"]) == (
        "Skatteetaten",
        "Skatteetaten",
        "Norwegian Tax Administration",
    )
    nav = agencies["nav"]
    assert nav["name_nb"] == nav["name_nn"] == "Arbeids- og velferdsetaten (Nav)"
    assert nav["name_en"] == "Norwegian Labour and Welfare Administration"
    assert (agencies["oslo-kommune"]["level"], agencies["oslo-kommune"]["municipality_number"]) == (
        "municipal",
        "0301",
    )
    assert agencies["bergen-kommune"]["municipality_number"] == "4601"
    for agency in agencies.values():
        org = organisations[agency["orgnr"]]
        assert org["form"] == ("KOMM" if agency["level"] == "municipal" else "STAT")
        assert agency["orgnr"].startswith("3")
    # The agencies keep their numbers whatever the country's seed.
    other = {a["slug"]: a["orgnr"] for a in generate_country(20, 99).agencies}
    assert other == {slug: a["orgnr"] for slug, a in agencies.items()}


def test_summary_reads_as_one_line() -> None:
    summary = SeedSummary(
        persons=10_000,
        organisations=677,
        roles=1618,
        contacts=7036,
        reserved=616,
        agencies=10,
        seconds=2.5,
    )
    line = str(summary)
    assert "\n" not in line
    assert "10,000 people" in line and "4,000 persons/s" in line and "616 reserved" in line


# --- the database ----------------------------------------------------------------------


async def test_the_session_database_holds_the_seeded_country(db: Database) -> None:
    expected = generate_country(DEMO_PERSONS, DEMO_SEED)
    async with db.session() as session:
        stored = set(await session.scalars(select(Person.pid)))
        agencies = await registry.list_agencies(session)
    assert {p["pid"] for p in expected.persons} <= stored
    assert {a.slug for a in agencies} >= {a["slug"] for a in expected.agencies}


async def test_seed_if_empty_leaves_a_seeded_database_alone(db: Database) -> None:
    before = await register_counts(db)
    assert await seed_if_empty(db, persons=50, seed=1) is None
    assert await register_counts(db) == before


async def test_seed_country_refuses_a_register_that_has_people(db: Database) -> None:
    before = await register_counts(db)
    with pytest.raises(DemoError, match="already has people"):
        await seed_country(db, persons=10, seed=1)
    assert await register_counts(db) == before


async def test_seeding_a_fresh_database_writes_what_the_summary_says(fresh_db: Database) -> None:
    done: list[int] = []
    summary = await seed_country(fresh_db, persons=250, seed=5, progress=done.append)
    counts = await register_counts(fresh_db)
    assert counts == {
        "persons": summary.persons,
        "organisations": summary.organisations,
        "roles": summary.roles,
        "contacts": summary.contacts,
        "agencies": summary.agencies,
        "reserved": summary.reserved,
    }
    assert summary.persons == 250 and summary.agencies == len(data.AGENCIES)
    assert done == sorted(done) and done[-1] == 250 and len(done) >= 7
    async with fresh_db.session() as session:
        pid = await session.scalar(select(Person.pid).order_by(Person.pid).limit(1))
        assert pid is not None
        history = await registry.history(session, pid, registry.Access("test", "check history"))
    assert history[0].kind == "birth"


async def test_the_same_seed_writes_identical_rows(tmp_path: Path) -> None:
    dumps = []
    for _ in range(2):
        with fresh_url(tmp_path) as url:
            database = Database(url)
            try:
                await database.upgrade()
                await seed_country(database, persons=150, seed=21)
                dumps.append(await dump(database))
            finally:
                await database.dispose()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["registry_person"]) == 150


async def test_a_failure_mid_seed_leaves_the_database_empty(
    fresh_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service._insert_batch
    calls = 0

    async def failing(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("the disk caught fire")
        await real(*args)

    monkeypatch.setattr(service, "_insert_batch", failing)
    with pytest.raises(RuntimeError, match="caught fire"):
        await seed_country(fresh_db, persons=200, seed=2)
    assert calls == 2
    assert set((await register_counts(fresh_db)).values()) == {0}


async def test_two_seeders_at_once_make_one_country(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service._insert_batch
    writing: list[int] = []

    async def slow(*args: Any) -> None:  # hold the lock long enough for the other to queue
        writing.append(1)
        await asyncio.sleep(0.03)
        await real(*args)

    monkeypatch.setattr(service, "_insert_batch", slow)
    with fresh_url(tmp_path) as url:
        first, second = Database(url), Database(url)
        try:
            await first.upgrade()
            results = await asyncio.gather(
                seed_if_empty(first, persons=200, seed=4),
                seed_if_empty(second, persons=200, seed=4),
            )
            assert sorted(r is None for r in results) == [False, True]
            counts = await register_counts(first)
            assert counts["persons"] == 200 and counts["agencies"] == len(data.AGENCIES)
            assert len(writing) == 7, "only one seeder wrote (one batch per table)"
        finally:
            await first.dispose()
            await second.dispose()


async def test_an_unmigrated_database_gets_advice_not_a_traceback(tmp_path: Path) -> None:
    with fresh_url(tmp_path) as url:
        database = Database(url)
        try:
            with pytest.raises(DemoError, match="felles db upgrade"):
                await seed_country(database, persons=5, seed=1)
            with pytest.raises(DemoError, match="felles db upgrade"):
                await seed_if_empty(database, persons=5, seed=1)
        finally:
            await database.dispose()


async def test_the_cli_seeds_a_fresh_database(settings: Settings, tmp_path: Path) -> None:
    with fresh_url(tmp_path) as url:
        env = felles_env(settings, FELLES_DATABASE_URL=url, FELLES_DATA_DIR=str(tmp_path / "var"))
        command = felles_command("demo", "seed", "--persons", "200", "--seed", "3")
        done = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "Seeded 200 people" in done.stderr and "persons/s" in done.stderr
        again = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 1
        assert "already has people" in again.stderr and "Traceback" not in again.stderr
        database = Database(url)
        try:
            async with database.engine.connect() as conn:
                assert await conn.scalar(select(func.count()).select_from(Person)) == 200
        finally:
            await database.dispose()
