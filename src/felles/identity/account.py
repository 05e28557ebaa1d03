"""Felles' own pages for a logged-in person (enrolling a password, an authenticator app
or a passkey). They rely on the SSO session itself: to log in, the person goes through
an ordinary authorization request of the built-in client `felles-account`."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from felles.identity import clients
from felles.identity.api import SSO_COOKIE
from felles.identity.models import Client
from felles.identity.runtime import IdentityRuntime, runtime
from felles.identity.service import SsoState, s256
from felles.web.pages import safe_next

ACCOUNT_CLIENT_ID = "felles-account"
router = APIRouter(include_in_schema=False)


async def ensure_account_client(rt: IdentityRuntime) -> None:
    """The built-in client for Felles' own account pages (public, PKCE, no secret)."""
    redirect = f"{rt.settings.base_url}/account/callback"
    async with rt.db.session() as session:
        row = await session.get(Client, ACCOUNT_CLIENT_ID)
        now = datetime.now(UTC)
        if row is None:
            session.add(
                Client(
                    client_id=ACCOUNT_CLIENT_ID,
                    name="Felles",
                    auth_method="none",
                    grant_types=["authorization_code"],
                    redirect_uris=[redirect],
                    post_logout_redirect_uris=[f"{rt.settings.base_url}/"],
                    scopes=["openid"],
                    sector_identifier="felles-account",
                    created_at=now,
                    updated_at=now,
                )
            )
        elif row.redirect_uris != [redirect]:  # the base URL changed
            clients.forget(ACCOUNT_CLIENT_ID)
            row.redirect_uris = [redirect]
            row.post_logout_redirect_uris = [f"{rt.settings.base_url}/"]
            row.updated_at = now


async def current_person(request: Request) -> SsoState | None:
    """The person logged in on this browser, if any (their live SSO session)."""
    rt = await runtime(request)
    async with rt.db.session() as session:
        return await rt.identity.sso_state(session, request.cookies.get(SSO_COOKIE))


def account_login_url(next_path: str, acr: str | None = None) -> str:
    """Where to send a person who must log in before an account page."""
    query = {"next": safe_next(next_path)}
    if acr:
        query["acr"] = acr
    return "/account/start?" + urlencode(query)


@router.get("/account/start")
async def start(
    request: Request,
    next: Annotated[str, Query(max_length=500)] = "/",
    acr: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Begin an authorization request of the built-in client; back to `next` after."""
    rt = await runtime(request)
    await ensure_account_client(rt)
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": ACCOUNT_CLIENT_ID,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": f"{rt.settings.base_url}/account/callback",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(16),
    }
    if acr:
        params["acr_values"] = acr
    response = RedirectResponse("/authorize?" + urlencode(params), status_code=303)
    response.set_cookie(
        "felles_account_next",
        safe_next(next),
        max_age=1800,
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
    )
    return response


@router.get("/account/callback")
async def callback(request: Request) -> Response:
    """The login set the SSO cookie already; the code itself is not needed."""
    target = safe_next(request.cookies.get("felles_account_next"))
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie("felles_account_next")
    return response
