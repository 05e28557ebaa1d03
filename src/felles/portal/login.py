"""Logging in to the portal: an ordinary OpenID Connect authorization code flow with PKCE
against Felles' login service, over HTTP, exactly as an agency's own service would do it.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError

from felles.identity import levels
from felles.identity.service import s256
from felles.portal.models import PartyKind
from felles.portal.runtime import PortalRuntime, portal
from felles.portal.session import ABSOLUTE, COOKIE, Party, PortalSession
from felles.web.pages import safe_next
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "felles_portal_login"
LOGIN_SECONDS = 900
# The session is read under /portal and by the digital mailbox's pages (/mailbox).
SESSION_PATH = "/"


class LoginFailed(Exception):
    """The provider's answer could not be trusted or used; the person tries again."""


def login_url(next_path: str, acr: str | None = None) -> str:
    query = {"next": safe_next(next_path)}
    if acr:
        query["acr"] = acr
    return "/portal/login?" + urlencode(query)


def set_session_cookie(response: Response, rt: PortalRuntime, session: PortalSession) -> None:
    response.set_cookie(
        COOKIE,
        rt.sealer.seal_session(session),
        max_age=ABSOLUTE,
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
        path=SESSION_PATH,
    )


def delete_session_cookie(response: Response) -> None:
    """End the session in the browser (also a cookie from when it lived under /portal)."""
    for path in (SESSION_PATH, "/portal"):
        response.delete_cookie(COOKIE, path=path)


@router.get("/portal/login")
async def start(
    request: Request,
    next: Annotated[str, Query(max_length=500)] = "/portal",
    acr: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Send the person to the login service; they come back to `next`."""
    rt = await portal(request)
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    nonce = secrets.token_urlsafe(16)
    wanted = acr if acr in levels.LEVELS else levels.SUBSTANTIAL
    params = {
        "client_id": rt.client_id,
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": rt.redirect_uri,
        "state": state,
        "nonce": nonce,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "acr_values": wanted,
        "ui_locales": request_language(request),
    }
    response = RedirectResponse("/authorize?" + urlencode(params), status_code=303)
    sealed = rt.sealer.seal(
        {"v": verifier, "s": state, "n": nonce, "next": safe_next(next), "acr": wanted},
        b"login",
    )
    response.set_cookie(
        LOGIN_COOKIE,
        sealed,
        max_age=LOGIN_SECONDS,
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
        path="/portal",
    )
    return response


@router.get("/portal/callback")
async def callback(request: Request) -> Response:
    """Exchange the code, verify the ID token, read the name, start the portal session."""
    rt = await portal(request)
    state = rt.sealer.open(request.cookies.get(LOGIN_COOKIE), b"login")
    query = request.query_params
    if state is None or not secrets.compare_digest(query.get("state", ""), state["s"]):
        return RedirectResponse("/portal?problem=login", status_code=303)
    if query.get("error"):
        return RedirectResponse("/portal?problem=login-cancelled", status_code=303)
    try:
        session = await _finish_login(rt, query.get("code", ""), query.get("iss"), state)
    except LoginFailed:
        return RedirectResponse("/portal?problem=login", status_code=303)
    response = RedirectResponse(state["next"], status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/portal")
    set_session_cookie(response, rt, session)
    return response


async def _finish_login(
    rt: PortalRuntime, code: str, iss: str | None, state: dict[str, Any]
) -> PortalSession:
    if iss != rt.settings.issuer:  # RFC 9207: the answer is from our provider
        raise LoginFailed("iss")
    async with rt.provider() as provider:
        tokens = await provider.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": rt.redirect_uri,
                "code_verifier": state["v"],
            },
            auth=(rt.client_id, rt.client_secret),
        )
        if tokens.status_code != 200:
            raise LoginFailed("token")
        body = tokens.json()
        claims = await _verified_id_token(rt, provider, body.get("id_token", ""), state)
        info = await provider.get(
            "/userinfo", headers={"authorization": f"Bearer {body.get('access_token', '')}"}
        )
        if info.status_code != 200:
            raise LoginFailed("userinfo")
        name = str(info.json().get("name") or "")
    pid = str(claims["pid"])
    now = int(time.time())
    session = PortalSession(
        pid=pid,
        name=name,
        acr=str(claims.get("acr", "")),
        sid=str(claims.get("sid", "")),
        auth_time=int(claims.get("auth_time", now)),
        expires_at=now,
        party=Party(PartyKind.person, pid, name),
        id_token=body["id_token"],
    )
    return session.renewed(now)


async def _verified_id_token(
    rt: PortalRuntime, provider: Any, token: str, state: dict[str, Any]
) -> dict[str, Any]:
    for refresh in (False, True):
        keys = await rt.jwks(provider, refresh=refresh)
        try:
            decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
            break
        except JoseError:
            if refresh:
                raise LoginFailed("id_token") from None
    claims = dict(decoded.claims)
    now = time.time()
    if (
        claims.get("iss") != rt.settings.issuer
        or claims.get("aud") not in (rt.client_id, [rt.client_id])
        or claims.get("nonce") != state["n"]
        or float(claims.get("exp", 0)) < now - 30
        or not isinstance(claims.get("pid"), str)
        or not levels.satisfies(str(claims.get("acr", "")), [state["acr"]])
    ):
        raise LoginFailed("id_token claims")
    return claims


@router.post("/portal/logout")
async def logout(request: Request) -> Response:
    """End the portal session and the single sign-on session behind it."""
    rt = await portal(request)
    current = rt.sealer.open_session(request.cookies.get(COOKIE))
    target = f"{rt.base_url}/portal?logged_out=1"
    if current is not None and current.id_token:
        target = "/endsession?" + urlencode(
            {
                "id_token_hint": current.id_token,
                "post_logout_redirect_uri": f"{rt.base_url}/portal",
                "state": secrets.token_urlsafe(8),
            }
        )
    response = RedirectResponse(target, status_code=303)
    delete_session_cookie(response)
    return response


@router.get("/portal/logout/frontchannel")
async def frontchannel_logout(request: Request) -> Response:
    """The login service ends the SSO session elsewhere ("log out everywhere") and loads
    this in a hidden frame: the portal session of that SSO session ends too. Checking
    `iss` and `sid` keeps another site from logging people out of the portal."""
    rt = await portal(request)
    response = Response(status_code=200, headers={"cache-control": "no-store"})
    current = rt.sealer.open_session(request.cookies.get(COOKIE))
    query = request.query_params
    if (
        current is not None
        and query.get("iss") == rt.settings.issuer
        and secrets.compare_digest(query.get("sid", ""), current.sid)
    ):
        delete_session_cookie(response)
    return response
