"""The OpenID Connect / OAuth 2.0 endpoints (for relying parties and agencies' servers).

Errors here follow OAuth (`{"error": ..., "error_description": ...}`), not RFC 9457:
the clients that call these endpoints are OAuth libraries and expect that shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database
from felles.identity import levels
from felles.identity.client_auth import CLIENT_JWT_ALGS, authenticate_client
from felles.identity.clients import (
    AUTH_METHODS,
    GRANT_REFRESH,
    ClientRecord,
    UnknownClient,
    get_client,
)
from felles.identity.dpop import PROOF_ALGS, check_binding, verify_proof
from felles.identity.errors import NO_STORE, OAuthError, invalid_request
from felles.identity.runtime import IdentityRuntime, runtime
from felles.identity.service import (
    AuthorizeError,
    LoginDone,
    NeedsLogin,
    RedirectError,
    SsoState,
    parse_testid_hint,
)
from felles.identity.tokens import InvalidToken
from felles.web.lane import Lane
from felles.web.observability import log
from felles.web.templating import render

router = APIRouter(tags=["login (OpenID Connect)"])
# The protocol endpoints: answered directly by the app, past FastAPI's routing (web/lane.py).
lane = Lane(router)

SSO_COOKIE = "felles_sso"
# Endpoints that other sites post to (clients, browsers coming from a relying party):
# they carry client authentication or are meant to be cross-site, so no CSRF token.
CSRF_EXEMPT_PATHS = (
    "/authorize",
    "/par",
    "/token",
    "/userinfo",
    "/introspect",
    "/revoke",
    "/endsession",
)


def _single_values(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 3.1: a parameter must not appear twice."""
    values: dict[str, str] = {}
    for key, value in items:
        if key in values:
            raise invalid_request(f"The parameter {key} appears more than once")
        values[key] = value
    return values


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise invalid_request("The body must be application/x-www-form-urlencoded")
    body = await request.body()  # already read and size-checked by the guard middleware
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("The body is not a valid form") from None
    return _single_values(pairs)


async def _client(
    session: AsyncSession, rt: IdentityRuntime, request: Request, form: dict[str, str]
) -> ClientRecord:
    """The client calling a back-channel endpoint, proven by its registered method."""
    return await authenticate_client(
        session, form, request.headers.get("authorization"), rt.identity.audiences
    )


def _set_sso_cookie(response: Response, rt: IdentityRuntime, value: str) -> None:
    response.set_cookie(
        SSO_COOKIE, value, httponly=True, samesite="lax", secure=rt.settings.https, path="/"
    )


# --- Discovery ---------------------------------------------------------------------------


@lane.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    rt = await runtime(request)
    return Response(
        rt.discovery_json(),
        media_type="application/json",
        headers={"cache-control": "public, max-age=300"},
    )


@lane.get("/jwks")
async def jwks(request: Request) -> Response:
    rt = await runtime(request)
    return Response(
        await rt.keys.jwks_json(),
        media_type="application/jwk-set+json",
        headers={"cache-control": "public, max-age=60"},
    )


# --- Authorization -----------------------------------------------------------------------


@lane.api_route("/authorize", methods=["GET", "POST"], include_in_schema=False)
async def authorize(request: Request) -> Response:
    rt = await runtime(request)
    try:
        if request.method == "POST":
            raw = await _form(request)
        else:
            raw = _single_values(request.query_params.multi_items())
    except OAuthError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    try:
        # Autocommit: claiming the pushed request, the register lookup and the login's
        # writes (one statement) each stand on their own.
        async with rt.db.session(autocommit=True) as session:
            auth = await rt.identity.begin(session, raw)
            sso = await rt.identity.sso_state(session, request.cookies.get(SSO_COOKIE))
            hinted = parse_testid_hint(auth.login_hint) if rt.testid_enabled else None
            outcome = await rt.identity.decide(session, auth, sso, hold=hinted is None)
            if isinstance(outcome, NeedsLogin) and hinted is not None:
                # TestID's headless login (dev and test only): no pages, no held request.
                who = await rt.testid_login(session, *hinted)
                if who is not None:
                    outcome = await rt.identity.complete(session, auth, who, sso)
                else:
                    outcome = NeedsLogin(
                        await rt.identity.hold(session, auth),
                        outcome.wanted_acr,
                        outcome.login_hint,
                        outcome.locale,
                    )
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    except RedirectError as exc:
        return RedirectResponse(exc.url, status_code=303)
    return login_redirect(rt, outcome)


def login_redirect(rt: IdentityRuntime, outcome: LoginDone | NeedsLogin) -> Response:
    """Back to the client with a code, or on to the login pages."""
    if isinstance(outcome, NeedsLogin):
        return RedirectResponse(f"/login?auth={outcome.pending_id}", status_code=303)
    response = RedirectResponse(outcome.redirect_url, status_code=303)
    if outcome.sso_cookie:
        _set_sso_cookie(response, rt, outcome.sso_cookie)
    response.headers.update(NO_STORE)
    return response


def authorize_error_page(request: Request, error: str, description: str) -> Response:
    """When we must not redirect (unknown client, unregistered redirect URI)."""
    return render(
        request,
        "identity/authorize_error.html",
        {"error": error, "description": description},
        status_code=400,
    )


@lane.post("/par")
async def pushed_authorization_request(request: Request) -> Response:
    rt = await runtime(request)
    try:
        form = await _form(request)
        async with rt.db.session(autocommit=True) as session:  # one INSERT
            client = await _client(session, rt, request, form)
            if "dpop" in request.headers:
                proof = await verify_proof(
                    session, request.headers["dpop"], method="POST", url=rt.identity.par_endpoint
                )
                if form.setdefault("dpop_jkt", proof.jkt) != proof.jkt:
                    raise invalid_request("dpop_jkt does not match the DPoP proof's key")
            request_uri, expires_in = await rt.identity.push(session, client, form)
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(
        {"request_uri": request_uri, "expires_in": expires_in}, status_code=201, headers=NO_STORE
    )


# --- Tokens ------------------------------------------------------------------------------


@lane.post("/token")
async def token(request: Request) -> Response:
    rt = await runtime(request)
    refusal: OAuthError | None = None
    try:
        form = await _form(request)
        # A refresh is read, claimed and replaced: a transaction. The other grants write
        # at most one statement each (the code grant claims the code and stores the new
        # refresh token in one).
        autocommit = form.get("grant_type") != GRANT_REFRESH
        async with rt.db.session(autocommit=autocommit) as session:
            client: ClientRecord | None = None
            jwt_grant_alone = (
                form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
                and not form.get("client_assertion")
                and not form.get("client_secret")
                and "authorization" not in request.headers
            )
            if not jwt_grant_alone:
                client = await _client(session, rt, request, form)
            jkt = None
            if "dpop" in request.headers:
                proof = await verify_proof(
                    session,
                    request.headers["dpop"],
                    method="POST",
                    url=rt.identity.token_endpoint,
                )
                jkt = proof.jkt
            try:
                body = await rt.identity.token(session, client, form, dpop_jkt=jkt)
            except OAuthError as exc:
                if not exc.keep_changes:
                    raise
                refusal = exc  # leave the block normally, so the revocation is committed
        if refusal is not None:
            return refusal.response()
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


def _authorization(request: Request) -> tuple[str, str] | None:
    """(scheme, token) from `Authorization: Bearer ...` or `Authorization: DPoP ...`."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "dpop") and value.strip():
        return scheme.lower(), value.strip()
    return None


def _unauthorized(error: str | None, description: str = "") -> Response:
    algs = f'DPoP algs="{" ".join(PROOF_ALGS)}"'
    challenge = f'Bearer realm="felles", {algs}'
    if error:
        challenge = f'Bearer error="{error}", error_description="{description}", {algs}'
    return Response(status_code=401, headers={"www-authenticate": challenge, **NO_STORE})


@lane.api_route("/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> Response:
    rt = await runtime(request)
    presented = _authorization(request)
    if presented is None:
        return _unauthorized(None)
    scheme, token = presented
    try:
        async with rt.db.session(autocommit=True) as session:  # reads and one log row
            # Revocation is checked by `userinfo`, in the statement that reads the profile.
            claims = await rt.identity.tokens.verify_access_token(token)
            await check_binding(
                session,
                claims,
                scheme=scheme,
                token=token,
                proof=request.headers.get("dpop"),
                method=request.method,
                url=f"{rt.identity.issuer}/userinfo",
            )
            info = await rt.identity.userinfo(session, claims)
    except InvalidToken:
        return _unauthorized("invalid_token", "The access token is not valid")
    except OAuthError as exc:
        return _unauthorized(exc.error, exc.description)
    return JSONResponse(info, headers=NO_STORE)


@lane.post("/introspect")
async def introspect(request: Request) -> Response:
    rt = await runtime(request)
    try:
        form = await _form(request)
        # Reads, and perhaps a client assertion's jti: one statement each (autocommit).
        async with rt.db.session(autocommit=True) as session:
            client = await _client(session, rt, request, form)
            if client.auth_method == "none":
                # RFC 7662 2.1: introspection needs real client authentication; a public
                # client's id is no secret.
                raise OAuthError(
                    "invalid_client", "Introspection needs client authentication", status=401
                )
            body = await rt.identity.introspect(session, client, form.get("token", ""))
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


@lane.post("/revoke")
async def revoke(request: Request) -> Response:
    rt = await runtime(request)
    try:
        form = await _form(request)
        async with rt.db.session() as session:
            client = await _client(session, rt, request, form)
            await rt.identity.revoke(session, client, form.get("token", ""))
    except OAuthError as exc:
        return exc.response()
    return Response(status_code=200, headers=NO_STORE)


# --- Logout ------------------------------------------------------------------------------


@router.api_route("/endsession", methods=["GET", "POST"], include_in_schema=False)
async def end_session(request: Request) -> Response:
    """RP-initiated logout; then front- and back-channel logout to every client."""
    rt = await runtime(request)
    try:
        if request.method == "POST":
            raw = await _form(request)
        else:
            raw = _single_values(request.query_params.multi_items())
    except OAuthError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    hint_claims = None
    if raw.get("id_token_hint"):
        hint_claims = await rt.identity.id_token_hint_claims(raw["id_token_hint"])
        if hint_claims is None:
            return authorize_error_page(
                request, "invalid_request", "The id_token_hint is not a token we issued."
            )
    if hint_claims is None:
        # Without proof that the service itself asks, a logout could be forced on the
        # person by any page they visit: ask them first (OpenID RP-Initiated Logout 2).
        return render(
            request,
            "identity/logout_confirm.html",
            {
                "client_id": raw.get("client_id", ""),
                "post_logout_redirect_uri": raw.get("post_logout_redirect_uri", ""),
                "state": raw.get("state", ""),
            },
            headers=NO_STORE,
        )
    return await _log_out(request, rt, raw, hint_claims)


@router.post("/endsession/confirm", include_in_schema=False)
async def confirm_end_session(request: Request) -> Response:
    """The person said yes on the confirmation page (a CSRF-protected form)."""
    rt = await runtime(request)
    form = await request.form()
    raw = {k: v for k, v in form.items() if isinstance(v, str) and v and k != "csrf_token"}
    return await _log_out(request, rt, raw, None)


async def _log_out(
    request: Request, rt: IdentityRuntime, raw: dict[str, str], hint_claims: dict[str, Any] | None
) -> Response:
    client_id = raw.get("client_id") or (hint_claims or {}).get("aud")
    try:
        async with rt.db.session() as session:
            client = await _logout_client(session, client_id)
            sso = await rt.identity.sso_state(session, request.cookies.get(SSO_COOKIE))
            if sso is not None and hint_claims is not None and hint_claims.get("sid") != sso.id:
                sso = None  # the hint names another session: do not end this one
            result = await rt.identity.logout(
                session,
                sso,
                client=client,
                post_logout_redirect_uri=raw.get("post_logout_redirect_uri"),
                state=raw.get("state"),
                hinted_sid=(hint_claims or {}).get("sid") if sso is None else None,
            )
    except OAuthError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    await send_backchannel_logout(rt, result.backchannel)
    response = render(
        request,
        "identity/logged_out.html",
        {"frames": result.frontchannel_urls, "redirect_url": result.redirect_url},
        headers=_logout_csp(result.frontchannel_urls),
    )
    response.delete_cookie(SSO_COOKIE, path="/")
    response.headers.update(NO_STORE)
    return response


async def _logout_client(session: Any, client_id: Any) -> ClientRecord | None:
    if not isinstance(client_id, str) or not client_id:
        return None
    try:
        return await get_client(session, client_id, include_disabled=True)
    except UnknownClient:
        raise invalid_request("Unknown client_id") from None


def _logout_csp(frames: list[str]) -> dict[str, str]:
    """The logout page may frame exactly the clients' front-channel logout pages."""
    if not frames:
        return {}
    from urllib.parse import urlparse

    from felles.web.security import CSP

    origins = sorted({f"{urlparse(u).scheme}://{urlparse(u).netloc}" for u in frames})
    return {"content-security-policy": CSP + "; frame-src " + " ".join(origins)}


async def send_backchannel_logout(rt: IdentityRuntime, targets: list[tuple[str, str]]) -> None:
    """POST a logout token to each client; one slow or failing client does not stop others."""
    if not targets:
        return

    async def send(client: httpx.AsyncClient, uri: str, token: str) -> None:
        try:
            response = await client.post(uri, data={"logout_token": token})
            ok = response.status_code in (200, 204)
            log.info("backchannel_logout", target=uri, status=response.status_code, ok=ok)
        except httpx.HTTPError as exc:
            log.warning("backchannel_logout_failed", target=uri, error=type(exc).__name__)

    async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
        await asyncio.gather(*(send(client, uri, token) for uri, token in targets))


def discovery_document(issuer: str, people_scopes: list[str]) -> dict[str, Any]:
    """What the provider can do, truthfully (OpenID Connect Discovery 1.0)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/endsession",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_JWT_ALGS),
        "introspection_endpoint_auth_methods_supported": [m for m in AUTH_METHODS if m != "none"],
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", *people_scopes],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "pid",
            "locale",
            "name",
            "given_name",
            "family_name",
            "birthdate",
        ],
        "acr_values_supported": list(levels.LEVELS),
        "ui_locales_supported": ["nb", "nn", "en"],
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": False,
        "require_pushed_authorization_requests": False,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "dpop_signing_alg_values_supported": list(PROOF_ALGS),
    }


__all__ = ["CSRF_EXEMPT_PATHS", "SSO_COOKIE", "Database", "SsoState", "router"]
