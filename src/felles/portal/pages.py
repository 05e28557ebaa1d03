"""The portal's front page, choosing whom to act for, and keeping the session alive."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from felles.portal import authz
from felles.portal.login import set_session_cookie
from felles.portal.models import PartyKind
from felles.portal.session import Party
from felles.portal.web import current, page, redirect, signed_in
from felles.web.pages import safe_next

router = APIRouter(include_in_schema=False)


@router.get("/portal")
async def home(
    request: Request,
    problem: Annotated[str | None, Query(max_length=40)] = None,
    logged_out: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    rt, session = await current(request)
    return page(
        request,
        rt,
        session,
        "portal/home.html",
        {"problem": problem, "logged_out": bool(logged_out) and session is None},
    )


@router.get("/portal/party")
async def choose_party(
    request: Request, next: Annotated[str, Query(max_length=500)] = "/portal/inbox"
) -> Response:
    """Whom the person can act for: themself and the businesses the registers (or a
    delegation) let them act for."""
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        choices = await authz.parties(db, session.pid, session.name)
    return page(
        request, rt, session, "portal/party.html", {"choices": choices, "next": safe_next(next)}
    )


@router.post("/portal/party")
async def chose_party(
    request: Request,
    party: Annotated[str, Form(max_length=40)],
    next: Annotated[str, Form(max_length=500)] = "/portal/inbox",
) -> Response:
    rt, session = await signed_in(request)
    kind, _, ident = party.partition(":")
    async with rt.db.session() as db:
        if kind == "person":
            chosen = Party(PartyKind.person, session.pid, session.name)
        else:
            match = [
                c for c in await authz.parties(db, session.pid, session.name) if c.party.id == ident
            ]
            if kind != "organisation" or not match:
                return redirect(rt, session, "/portal/party")
            chosen = match[0].party
        if not (await authz.may_act_for(db, session.pid, chosen, "choose")).allowed:
            return redirect(rt, session, "/portal/party")
    return redirect(rt, session.acting_as(chosen), safe_next(next))


@router.get("/portal/keepalive")
async def keepalive(request: Request) -> Response:
    """Renew the session without reloading the page (the expiry warning's button)."""
    rt, session = await current(request)
    if session is None:
        return JSONResponse({"seconds_left": 0}, status_code=401)
    renewed = session.renewed()
    response = JSONResponse(
        {"seconds_left": max(0, renewed.expires_at - int(time.time()))},
        headers={"cache-control": "no-store"},
    )
    set_session_cookie(response, rt, renewed)
    return response
