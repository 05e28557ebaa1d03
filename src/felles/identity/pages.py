"""The login pages people see: choose a login method, TestID, logged out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from felles.identity import levels
from felles.identity.api import SSO_COOKIE, authorize_error_page, login_redirect
from felles.identity.methods import N_, methods_for
from felles.identity.runtime import runtime
from felles.identity.service import (
    Authenticated,
    AuthorizationRequest,
    AuthorizeError,
    RedirectError,
)
from felles.registry import service as registry
from felles.registry.numbers import InvalidNumber, parse_pid
from felles.web.i18n import LANGUAGE_COOKIE
from felles.web.templating import render

router = APIRouter(include_in_schema=False)


LEVEL_LABELS = {
    levels.SUBSTANTIAL: N_("Substantial (like MinID or BankID on mobile)"),
    levels.HIGH: N_("High (like BankID or Buypass)"),
}


@router.get("/login")
async def choose_method(request: Request, auth: Annotated[str, Query(max_length=100)]) -> Response:
    rt = await runtime(request)
    try:
        async with rt.db.session() as session:
            pending = await rt.identity.pending(session, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    use_requested_language(request, pending)
    offered = methods_for(rt.settings, pending.wanted_acr)
    return render(
        request,
        "identity/login.html",
        {"auth": auth, "client_name": pending.client.name, "methods": offered},
    )


async def finish_login(request: Request, auth: str, who: Authenticated) -> Response:
    """Every login method ends here: start or step up the SSO session and send the
    browser back to the service with a code (or an error the service must hear)."""
    rt = await runtime(request)
    try:
        async with rt.db.session() as session:
            pending = await rt.identity.pending(session, auth)
            sso = await rt.identity.sso_state(session, request.cookies.get(SSO_COOKIE))
            outcome = await rt.identity.complete(session, pending, who, sso, pending_id=auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    except RedirectError as exc:
        return RedirectResponse(exc.url, status_code=303)
    return login_redirect(rt, outcome)


def use_requested_language(request: Request, pending: AuthorizationRequest) -> None:
    """The service's `ui_locales` decides the login pages' language, unless the person
    has chosen one themself."""
    if pending.ui_locales and LANGUAGE_COOKIE not in request.cookies:
        request.state.lang = pending.locale


async def _testid_page(
    request: Request,
    auth: str,
    *,
    pid: str = "",
    acr: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    rt = await runtime(request)
    async with rt.db.session() as session:
        pending = await rt.identity.pending(session, auth)
        examples = await registry.list_people(session, limit=5)
    use_requested_language(request, pending)
    return render(
        request,
        "identity/testid.html",
        {
            "auth": auth,
            "client_name": pending.client.name,
            "pid": pid,
            "acr": acr or pending.wanted_acr,
            "levels": LEVEL_LABELS,
            "error": error,
            "examples": examples,
        },
        status_code=status_code,
    )


@router.get("/login/testid")
async def testid_form(request: Request, auth: Annotated[str, Query(max_length=100)]) -> Response:
    if not (await runtime(request)).testid_enabled:
        return authorize_error_page(request, "access_denied", "TestID is not available here.")
    try:
        return await _testid_page(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)


@router.post("/login/testid")
async def testid_submit(
    request: Request,
    auth: Annotated[str, Form(max_length=100)],
    pid: Annotated[str, Form(max_length=50)] = "",
    acr: Annotated[str, Form(max_length=50)] = levels.SUBSTANTIAL,
) -> Response:
    rt = await runtime(request)
    if not rt.testid_enabled:
        return authorize_error_page(request, "access_denied", "TestID is not available here.")
    try:
        try:
            number = parse_pid(pid).value
        except InvalidNumber:
            return await _testid_page(
                request,
                auth,
                pid=pid,
                acr=acr,
                status_code=400,
                error=N_("Enter a national identity number of 11 digits"),
            )
        if acr not in levels.LEVELS:
            acr = levels.SUBSTANTIAL
        async with rt.db.session() as session:
            await rt.identity.pending(session, auth)
            who = await rt.testid_login(session, number, acr)
        if who is None:
            return await _testid_page(
                request,
                auth,
                pid=pid,
                acr=acr,
                status_code=400,
                error=N_("There is no one with that national identity number in the test register"),
            )
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    return await finish_login(request, auth, who)
