"""Driving the portal like a browser over the in-process HTTP client: log in through the
real login service (TestID), follow redirects, post forms with the CSRF token."""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def use_app_as_provider(app: Any) -> None:
    """The portal reaches the login service over HTTP; in-process, through the app."""
    app.state.portal.provider_transport = httpx.ASGITransport(app=app)


async def follow(
    http: httpx.AsyncClient, response: httpx.Response, limit: int = 10
) -> httpx.Response:
    for _ in range(limit):
        if response.status_code not in (302, 303, 307):
            return response
        response = await http.get(response.headers["location"])
    raise AssertionError("too many redirects")


async def log_in(
    http: httpx.AsyncClient,
    pid: str,
    next_path: str = "/portal/inbox",
    acr: str = "idporten-loa-substantial",
) -> httpx.Response:
    """/portal/login → /authorize → TestID → /portal/callback → `next_path`, in English
    (the tests read the pages' English texts)."""
    http.cookies.set("felles_lang", "en")
    start = await http.get("/portal/login", params={"next": next_path, "acr": acr})
    authorize = await http.get(start.headers["location"])
    chooser = httpx.URL(authorize.headers["location"])
    auth = chooser.params["auth"]
    await http.get(f"/login/testid?auth={auth}")
    done = await http.post(
        "/login/testid",
        data={"auth": auth, "pid": pid, "acr": acr, "csrf_token": http.cookies["felles_csrf"]},
    )
    assert done.status_code == 303, done.text
    return await follow(http, done)


def csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


async def post_form(
    http: httpx.AsyncClient, path: str, data: dict[str, str], *, follow_redirects: bool = True
) -> httpx.Response:
    response = await http.post(path, data={**data, "csrf_token": http.cookies["felles_csrf"]})
    return await follow(http, response) if follow_redirects else response
