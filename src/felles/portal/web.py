"""What every portal page shares: the logged-in person, renewing their session, the
layout's facts (whom they act for, when the session ends) and "not found" answers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from felles.portal.login import login_url, set_session_cookie
from felles.portal.runtime import PortalRuntime, portal
from felles.portal.session import COOKIE, WARN_BEFORE, PortalSession
from felles.web.templating import render


async def current(request: Request) -> tuple[PortalRuntime, PortalSession | None]:
    """The portal runtime and the person logged in on this browser, if any."""
    rt = await portal(request)
    return rt, rt.sealer.open_session(request.cookies.get(COOKIE))


class LoginRequired(Exception):
    """Raised by `signed_in`; answered with a redirect to log in (see `install`)."""


async def signed_in(request: Request) -> tuple[PortalRuntime, PortalSession]:
    """The runtime and the logged-in person; someone not logged in is sent to log in and
    brought back here afterwards."""
    rt, session = await current(request)
    if session is None:
        raise LoginRequired
    return rt, session


def install(app: FastAPI) -> None:
    async def login_first(request: Request, _exc: Exception) -> Response:
        return to_login(request)

    app.add_exception_handler(LoginRequired, login_first)


def to_login(request: Request, acr: str | None = None) -> RedirectResponse:
    """Send someone who is not (or no longer) logged in to log in, then back here."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(login_url(path, acr), status_code=303)


def page(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a portal page and renew the session it was rendered in."""
    renewed = session.renewed() if session else None
    values: dict[str, Any] = {"portal_session": renewed, "session_warning": None}
    if renewed is not None:
        left = max(0, renewed.expires_at - int(time.time()))
        values["session_seconds_left"] = left
        values["session_warn_before"] = WARN_BEFORE
        values["session_minutes"] = max(1, left // 60)
    if context:
        values.update(context)
    response = render(request, template, values, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    if renewed is not None:
        set_session_cookie(response, rt, renewed)
    return response


def not_found(request: Request, rt: PortalRuntime, session: PortalSession | None) -> Response:
    """The same answer whether a thing does not exist or belongs to someone else."""
    return page(request, rt, session, "portal/not_found.html", status_code=404)


def redirect(rt: PortalRuntime, session: PortalSession | None, target: str) -> Response:
    """A 303 to `target` that keeps the (renewed) session."""
    response = RedirectResponse(target, status_code=303)
    if session is not None:
        set_session_cookie(response, rt, session.renewed())
    return response
