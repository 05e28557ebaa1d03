"""A relying party built into Felles for trying the login service (dev and test only).

A newcomer registers a client with `felles clients add`, types its id and secret here,
logs in with TestID and sees the tokens and claims, then logs out everywhere. It talks
to the provider over HTTP like any other service would, so it proves the real path.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from felles.identity import levels
from felles.identity.crypto import b64url, decrypt, encrypt
from felles.identity.runtime import IdentityRuntime, runtime
from felles.identity.service import s256
from felles.web.templating import render

router = APIRouter(include_in_schema=False)
COOKIE = "felles_demo_rp"
CONTEXT = b"demo-rp"


def _callback(rt: IdentityRuntime) -> str:
    return f"{rt.settings.base_url}/demo/rp/callback"


def _seal(rt: IdentityRuntime, state: dict[str, Any]) -> str:
    return b64url(encrypt(rt.keys_master, json.dumps(state).encode(), CONTEXT))


def _open(rt: IdentityRuntime, sealed: str | None) -> dict[str, Any] | None:
    if not sealed or len(sealed) > 4000:
        return None
    import base64

    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        value = json.loads(decrypt(rt.keys_master, raw, CONTEXT))
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def _page(request: Request, rt: IdentityRuntime, **context: Any) -> Response:
    if not rt.testid_enabled:
        return render(
            request,
            "error.html",
            {
                "status": 404,
                "heading": "We could not find that page",
                "advice": "",
                "request_id": "",
            },
            status_code=404,
        )
    return render(
        request,
        "identity/demo_rp.html",
        {
            "callback": _callback(rt),
            "post_logout": f"{rt.settings.base_url}/demo/rp",
            "levels": levels.LEVELS,
            **context,
        },
    )


@router.get("/demo/rp")
async def home(
    request: Request, error: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    rt = await runtime(request)
    state = _open(rt, request.cookies.get(COOKIE))
    return _page(
        request,
        rt,
        result=(state or {}).get("result"),
        error=error,
        client_id=(state or {}).get("client_id", ""),
    )


@router.post("/demo/rp/start")
async def start(
    request: Request,
    client_id: Annotated[str, Form(max_length=64)],
    client_secret: Annotated[str, Form(max_length=200)],
    acr: Annotated[str, Form(max_length=40)] = levels.SUBSTANTIAL,
) -> Response:
    rt = await runtime(request)
    if not rt.testid_enabled:
        return Response(status_code=404)
    verifier = secrets.token_urlsafe(48)
    state = {
        "client_id": client_id.strip(),
        "client_secret": client_secret.strip(),
        "verifier": verifier,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
    }
    params = {
        "client_id": state["client_id"],
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": _callback(rt),
        "state": state["state"],
        "nonce": state["nonce"],
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "acr_values": acr if acr in levels.LEVELS else levels.SUBSTANTIAL,
        "ui_locales": getattr(request.state, "lang", "nb"),
    }
    response = RedirectResponse("/authorize?" + urlencode(params), status_code=303)
    response.set_cookie(
        COOKIE,
        _seal(rt, state),
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
        max_age=3600,
    )
    return response


@router.get("/demo/rp/callback")
async def callback(request: Request) -> Response:
    """Exchange the code over HTTP, verify the ID token, fetch userinfo, show it all."""
    rt = await runtime(request)
    state = _open(rt, request.cookies.get(COOKIE))
    query = request.query_params
    if state is None or query.get("state") != state.get("state"):
        return RedirectResponse("/demo/rp?error=state", status_code=303)
    if query.get("error"):
        return RedirectResponse(f"/demo/rp?{urlencode({'error': query['error']})}", status_code=303)
    if query.get("iss") != rt.settings.issuer:
        return RedirectResponse("/demo/rp?error=iss", status_code=303)
    base = rt.settings.base_url
    async with httpx.AsyncClient(base_url=base, timeout=10) as provider:
        tokens = await provider.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query.get("code", ""),
                "redirect_uri": _callback(rt),
                "code_verifier": state["verifier"],
            },
            auth=(state["client_id"], state["client_secret"]),
        )
        if tokens.status_code != 200:
            error = tokens.json().get("error", "token_error")
            return RedirectResponse(f"/demo/rp?{urlencode({'error': error})}", status_code=303)
        body = tokens.json()
        jwks = KeySet.import_key_set((await provider.get("/jwks")).json())
        userinfo = (
            await provider.get(
                "/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
            )
        ).json()
    try:
        id_token = jwt.decode(body["id_token"], jwks, algorithms=["RS256", "ES256"])
    except JoseError:
        return RedirectResponse("/demo/rp?error=id_token", status_code=303)
    claims = dict(id_token.claims)
    if claims.get("nonce") != state["nonce"] or claims.get("aud") != state["client_id"]:
        return RedirectResponse("/demo/rp?error=id_token", status_code=303)
    logout = f"{base}/endsession?" + urlencode(
        {
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": f"{base}/demo/rp",
            "state": secrets.token_urlsafe(8),
        }
    )
    result = {
        "id_token": claims,
        "userinfo": userinfo,
        "access_token": dict(jwt.decode(body["access_token"], jwks, algorithms=["ES256"]).claims),
        "logout_url": logout,
    }
    sealed = {"client_id": state["client_id"], "result": result}
    response = _page(request, rt, result=result, client_id=state["client_id"], error=None)
    response.set_cookie(
        COOKIE,
        _seal(rt, sealed),
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
        max_age=3600,
    )
    return response
