"""The person's own account pages: who has used their data in the registers, and, for a
business's general manager, who else may use the business's services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal import authz, catalogue
from felles.portal.display import N_, ROLE_NAMES, Names, moment
from felles.portal.models import Service
from felles.portal.prefill import ACCESSOR_PREFIX
from felles.portal.session import PortalSession
from felles.portal.web import page, redirect, signed_in
from felles.registry import service as registry
from felles.registry.numbers import InvalidNumber, parse_pid
from felles.registry.schemas import DataAccessRecord
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
MAX_PAGE = 10_000
DELEGATIONS = "/portal/delegations"

# Who read the data, for accessors that are not a portal service.
ACCESSORS = {
    "identity": N_("Felles login"),
    "identity:felles-portal": N_("Felles login, for Felles portal"),
    "felles-portal": N_("Felles portal"),
    "felles-cli": N_("An operator of Felles"),
}
# Why, for the purposes those accessors give.
PURPOSES = {
    "whom you can act for": N_("To show whom you can act for"),
    "delegation": N_("A business gave you access to one of its services"),
    "TestID login": N_("To log you in"),
    "send login code": N_("To send you a login code"),
    "Passkey registration": N_("To register your passkey"),
    "userinfo (profile)": N_("To give a service you logged in to your name"),
    "operator lookup": N_("Operations and support"),
    "prefill": N_("To fill in a form for you"),
    "contact details": N_("To show you your contact details, and change them"),
}
# What was read.
DATASETS = {
    "person": N_("your name, birth date and address"),
    "relations:child": N_("your children"),
    "relations:parent": N_("your parents"),
    "relations:spouse": N_("your spouse"),
    "relations:all": N_("your family"),
    "roles": N_("your roles in businesses"),
    "contact": N_("your contact details"),
    "history": N_("your history in the population register"),
}


async def _use(record: DataAccessRecord, names: Names, lang: str) -> dict[str, Any]:
    """One lookup in words: who (and for which agency), why, what and when."""
    who, agency, why = record.accessed_by, "", PURPOSES.get(record.purpose, record.purpose)
    translate = True
    if record.accessed_by.startswith(ACCESSOR_PREFIX):
        code = record.accessed_by.removeprefix(ACCESSOR_PREFIX)
        service = await names.session.get(Service, code)
        found = await names.definition(code, service.current_version) if service else None
        if found is not None:
            who, why, translate = found.name(lang), found.purpose(lang), False
            agency = await names.agency(service.owner_orgnr if service else None)
    elif record.accessed_by in ACCESSORS:
        who = ACCESSORS[record.accessed_by]
    elif record.accessed_by.startswith("identity:"):
        who = N_("Felles login, for a service you logged in to")
    elif record.purpose.startswith("login through"):
        why = N_("To log you in")
    return {
        "who": who,
        "agency": agency,
        "why": why,
        "translate": translate,
        "what": DATASETS.get(record.dataset, record.dataset),
        "when": moment(record.accessed_at, lang),
    }


@router.get("/portal/my-data")
async def my_data(
    request: Request, page_number: Annotated[str, Query(alias="page", max_length=7)] = "1"
) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    number = min(max(int(page_number) if page_number.isdigit() else 1, 1), MAX_PAGE)
    async with rt.db.session() as db:
        try:
            records = await registry.data_access_log(
                db, session.pid, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
            )
        except registry.NotFound:
            records = []
        names = Names(db, lang)
        uses = [await _use(r, names, lang) for r in records[:PAGE_SIZE]]
    return page(
        request,
        rt,
        session,
        "portal/my_data.html",
        {
            "uses": uses,
            "page_number": number,
            "previous_href": f"/portal/my-data?page={number - 1}" if number > 1 else None,
            "next_href": f"/portal/my-data?page={number + 1}" if len(records) > PAGE_SIZE else None,
        },
    )


# --- access for others ---------------------------------------------------------------

REFUSALS = {
    "not_general_manager": (
        "pid",
        N_("Only the general manager can give access for this business."),
    ),
    "not_delegable": ("service", N_("Access to this service cannot be given to others.")),
    "to_yourself": ("pid", N_("You cannot give access to yourself: you have it already.")),
    "no_such_person": ("pid", N_("We found no person with that national identity number.")),
    "already_delegated": ("pid", N_("That person already has access to this service.")),
    "no_such_delegation": ("", N_("That access has already been removed.")),
}


async def _delegable(db: AsyncSession) -> list[catalogue.CatalogueEntry]:
    return [
        e
        for e in await catalogue.search(db, "", limit=1000)
        if e.definition.audience.roles and e.definition.audience.delegable
    ]


async def _service_names(db: AsyncSession, codes: set[str], lang: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for code in codes:
        try:
            found[code] = (await catalogue.current(db, code)).definition.name(lang)
        except catalogue.ServiceNotFound:
            found[code] = code
    return found


async def _delegations_page(
    request: Request,
    rt: Any,
    session: PortalSession,
    *,
    errors: list[tuple[str, str]] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    lang = request_language(request)
    context: dict[str, Any] = {
        "errors": errors or [],
        "form": form or {},
        "error_for": dict(reversed(errors or [])),
    }
    party = session.party
    if party.is_person:
        return page(request, rt, session, "portal/delegations.html", context)
    async with rt.db.session() as db:
        allowed = (await authz.may_delegate(db, session.pid, party.id)).allowed
        context["may_delegate"] = allowed
        if not allowed:
            context["grantors"] = list(await authz.grantors(db, party.id))
            context["role_name"] = ROLE_NAMES["DAGL"]
        else:
            current_ones = await authz.delegations(db, party.id)
            services = await _delegable(db)
            names = await _service_names(db, {d.service_code for d in current_ones}, lang)
            context["delegations"] = [
                {
                    "view": d,
                    "service": names.get(d.service_code, d.service_code),
                    "when": moment(d.granted_at, lang),
                }
                for d in current_ones
            ]
            context["services"] = [(e.code, e.definition.name(lang)) for e in services]
            given = request.query_params.get("given", "")
            context["given"] = next(
                (d for d in context["delegations"] if str(d["view"].id) == given), None
            )
            context["removed"] = request.query_params.get("removed") == "1"
    return page(request, rt, session, "portal/delegations.html", context, status_code=status_code)


@router.get("/portal/delegations")
async def delegations(request: Request) -> Response:
    rt, session = await signed_in(request)
    return await _delegations_page(request, rt, session)


def _pid_problem(raw: str) -> str | None:
    value = raw.strip().replace(" ", "")
    if not value:
        return N_("Enter the national identity number of the person who is to have access.")
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return N_("A national identity number has 11 digits.")
    try:
        parse_pid(value)
    except InvalidNumber:
        return N_("Check the national identity number: it is not a valid number.")
    return None


@router.post("/portal/delegations")
async def give_access(
    request: Request,
    service: Annotated[str, Form(max_length=63)] = "",
    pid: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    rt, session = await signed_in(request)
    if session.party.is_person:
        return redirect(rt, session, DELEGATIONS)
    errors: list[tuple[str, str]] = []
    async with rt.db.session() as db:
        entry = next((e for e in await _delegable(db) if e.code == service), None)
    if entry is None:
        errors.append(("service", N_("Choose the service the person is to have access to.")))
    problem = _pid_problem(pid)
    if problem:
        errors.append(("pid", problem))
    form = {"service": service, "pid": pid}
    if errors or entry is None:
        return await _delegations_page(
            request, rt, session, errors=errors, form=form, status_code=400
        )
    try:
        async with rt.db.session() as db:
            row = await authz.delegate(
                db, session.pid, session.party.id, entry.definition, parse_pid(pid).value
            )
            given = row.id
    except authz.DelegationRefused as refused:
        field, message = REFUSALS.get(refused.reason, ("", refused.reason))
        return await _delegations_page(
            request, rt, session, errors=[(field, message)], form=form, status_code=400
        )
    return redirect(rt, session, f"{DELEGATIONS}?given={given}")


@router.post("/portal/delegations/{delegation_id}/remove")
async def remove_access(request: Request, delegation_id: int) -> Response:
    rt, session = await signed_in(request)
    if session.party.is_person:
        return redirect(rt, session, DELEGATIONS)
    try:
        async with rt.db.session() as db:
            await authz.revoke(db, session.pid, session.party.id, delegation_id)
    except authz.DelegationRefused as refused:
        field, message = REFUSALS.get(refused.reason, ("", refused.reason))
        return await _delegations_page(
            request, rt, session, errors=[(field, message)], status_code=400
        )
    return redirect(rt, session, f"{DELEGATIONS}?removed=1")
