"""The catalogue page, "who has used my data" and giving access to a business's services,
over HTTP."""

from __future__ import annotations

import re
import secrets
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select

from felles.db import Database
from felles.portal import authz, catalogue
from felles.portal.models import Delegation, PartyKind
from felles.portal.session import Party
from felles.registry import service as registry
from felles.registry.models import Person, Role, RoleCode
from felles.registry.numbers import pid_check_digits
from tests.portal.conftest import csrf, logged_in


async def test_catalogue_search(client: httpx.AsyncClient) -> None:
    client.cookies.set("felles_lang", "en")
    everything = await client.get("/portal/services")
    assert everything.status_code == 200
    for code in ("change-of-address", "kindergarten-place", "vat-return"):
        assert f'href="/portal/services/{code}"' in everything.text
    assert "general manager or accountant" in everything.text
    assert "level substantial" in everything.text
    for word in ("barnehage", "kindergarten", "BARNEHAGE"):
        found = (await client.get("/portal/services", params={"q": word})).text
        assert "/portal/services/kindergarten-place" in found
        assert "/portal/services/vat-return" not in found
    found = (await client.get("/portal/services", params={"q": "mva"})).text
    assert "/portal/services/vat-return" in found and "VAT return" in found
    none = (await client.get("/portal/services", params={"q": "xyzzy"})).text
    assert "We found no service for those words" in none
    assert "/portal/services/" not in none.split("<main", 1)[1].split("See all services")[0]
    client.cookies.set("felles_lang", "nb")
    norwegian = (await client.get("/portal/services", params={"q": "barnehage"})).text
    assert "Søknad om barnehageplass" in norwegian and "Oslo kommune" in norwegian


async def test_my_data_lists_a_prefill_lookup_with_service_and_purpose(
    client: httpx.AsyncClient, app, db: Database
) -> None:
    async with db.session() as session:
        person = (await registry.list_people(session, limit=1, offset=40))[0]
        await registry.get_person(
            session,
            person.pid,
            registry.Access(accessed_by="portal:kindergarten-place", purpose="prefill"),
        )
        await registry.roles_of(
            session, person.pid, registry.Access(accessed_by="felles-portal", purpose="x")
        )
    logged_in(client, app, person.pid)
    html = (await client.get("/portal/my-data")).text
    assert "Who has used my data" in html
    assert "Apply for a kindergarten place" in html
    assert "Process an application for a kindergarten place" in html
    assert "Oslo" in html  # the agency
    assert "your name, birth date and address" in html
    assert "Felles portal" in html and "your roles in businesses" in html
    # Newest first: the roles lookup came last.
    assert html.index("your roles in businesses") < html.index("Apply for a kindergarten place")
    logged_in(client, app, person.pid, lang="nn")
    nynorsk = (await client.get("/portal/my-data")).text
    assert "Søknad om barnehageplass" in nynorsk
    assert re.search(r"\d{1,2}\. \w+ 20\d\d", nynorsk)  # a date as Norwegians write it
    assert (await client.get("/portal/my-data", params={"page": "999"})).status_code == 200


@pytest.fixture
async def business(db: Database) -> tuple[str, str, str]:
    """A business with a general manager: (orgnr, name, the manager's pid)."""
    async with db.session() as session:
        role = await session.scalar(
            select(Role).where(Role.code == "DAGL").order_by(func.random()).limit(1)
        )
        assert role is not None
        org = await registry.get_organisation(session, role.orgnr)
    return org.orgnr, org.name, role.pid


async def outsider(db: Database, orgnr: str) -> tuple[str, str]:
    """An adult with no role in the business."""
    async with db.session() as session:
        in_org = select(Role.pid).where(Role.orgnr == orgnr)
        person = await session.scalar(
            select(Person)
            .where(Person.pid.not_in(in_org), Person.birth_date < func.date("2000-01-01"))
            .order_by(func.random())
            .limit(1)
        )
    assert person is not None
    return person.pid, f"{person.given_name} {person.family_name}"


async def test_general_manager_gives_and_removes_access(
    client: httpx.AsyncClient, app, db: Database, business: tuple[str, str, str]
) -> None:
    orgnr, name, manager = business
    party = Party(PartyKind.organisation, orgnr, name)
    to_pid, to_name = await outsider(db, orgnr)
    logged_in(client, app, manager, party)
    page = (await client.get("/portal/delegations")).text
    assert "Give someone access" in page and 'value="vat-return"' in page
    assert 'value="change-of-address"' not in page  # not a business service

    token = await csrf(client)
    given = await client.post(
        "/portal/delegations", data={"service": "vat-return", "pid": to_pid, "csrf_token": token}
    )
    assert given.status_code == 303 and given.headers["location"].startswith(
        "/portal/delegations?given="
    )
    assert to_pid not in given.headers["location"]
    shown = (await client.get(given.headers["location"])).text
    assert f"{to_name} now has access to VAT return" in shown
    assert to_pid[:6] + "*****" in shown and to_pid not in shown.replace(to_pid[:6] + "*****", "")

    again = await client.post(
        "/portal/delegations", data={"service": "vat-return", "pid": to_pid, "csrf_token": token}
    )
    assert again.status_code == 400 and "already has access" in again.text

    async with db.session() as session:
        choices = await authz.parties(session, to_pid, to_name)
        assert orgnr in {c.party.id for c in choices}
        entry = await catalogue.current(session, "vat-return")
        assert (await authz.may_use(session, to_pid, party, entry.definition, "start")).allowed
        delegation_id = await session.scalar(
            select(Delegation.id).where(
                Delegation.orgnr == orgnr,
                Delegation.to_pid == to_pid,
                Delegation.revoked_at.is_(None),
            )
        )
    removed = await client.post(
        f"/portal/delegations/{delegation_id}/remove", data={"csrf_token": token}
    )
    assert removed.status_code == 303
    assert "The access is removed" in (await client.get(removed.headers["location"])).text
    async with db.session() as session:
        choices = await authz.parties(session, to_pid, to_name)
        assert orgnr not in {c.party.id for c in choices}
        assert not (await authz.may_use(session, to_pid, party, entry.definition, "x")).allowed
    twice = await client.post(
        f"/portal/delegations/{delegation_id}/remove", data={"csrf_token": token}
    )
    assert twice.status_code == 400 and "already been removed" in twice.text


async def test_wrong_numbers_are_errors_in_the_summary(
    client: httpx.AsyncClient, app, db: Database, business: tuple[str, str, str]
) -> None:
    orgnr, name, manager = business
    logged_in(client, app, manager, Party(PartyKind.organisation, orgnr, name))
    token = await csrf(client)
    good_first9 = manager[:9]
    check = pid_check_digits(good_first9) or "00"
    wrong_check = good_first9 + f"{(int(check) + 1) % 100:02d}"
    cases = {
        "": "Enter the national identity number",
        "123": "A national identity number has 11 digits",
        wrong_check: "Check the national identity number: it is not a valid number",
        manager: "You cannot give access to yourself",
    }
    for pid, message in cases.items():
        answer = await client.post(
            "/portal/delegations", data={"service": "vat-return", "pid": pid, "csrf_token": token}
        )
        assert answer.status_code == 400
        summary = answer.text.split('class="ds-error-summary', 1)[1].split("</div>", 1)[0]
        assert message in summary and 'href="#pid"' in summary
        assert 'aria-invalid="true"' in answer.text
    no_service = await client.post(
        "/portal/delegations", data={"service": "", "pid": "", "csrf_token": token}
    )
    assert 'href="#service"' in no_service.text and 'href="#pid"' in no_service.text
    async with db.session() as session:
        unknown = await _unregistered_pid(session)
    missing = await client.post(
        "/portal/delegations", data={"service": "vat-return", "pid": unknown, "csrf_token": token}
    )
    assert "We found no person with that national identity number" in missing.text


async def _unregistered_pid(session) -> str:  # type: ignore[no-untyped-def]
    while True:
        first9 = f"0181{secrets.randbelow(100):02d}" + "4" + f"{secrets.randbelow(100):02d}"
        check = pid_check_digits(first9)
        if check and await session.get(Person, first9 + check) is None:
            return first9 + check


async def test_others_are_told_who_the_general_manager_is(
    client: httpx.AsyncClient, app, db: Database, business: tuple[str, str, str]
) -> None:
    orgnr, name, manager = business
    member, _ = await outsider(db, orgnr)
    async with db.session() as session:
        # A board member, who is not also the general manager.
        await registry.add_role(session, orgnr, member, RoleCode.MEDL, date(2020, 1, 1))
        person = await session.get(Person, manager)
    assert person is not None
    party = Party(PartyKind.organisation, orgnr, name)
    logged_in(client, app, member, party)
    page = (await client.get("/portal/delegations")).text
    assert "Only the general manager of" in page
    assert f"{person.given_name} {person.family_name}" in page
    assert "Give someone access" not in page
    token = await csrf(client)
    refused = await client.post(
        "/portal/delegations",
        data={"service": "vat-return", "pid": manager, "csrf_token": token},
    )
    assert refused.status_code == 400
    assert "Only the general manager can give access" in refused.text

    logged_in(client, app, member)
    yourself = (await client.get("/portal/delegations")).text
    assert "/portal/party?next=/portal/delegations" in yourself
