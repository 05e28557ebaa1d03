"""The OpenID Connect provider over HTTP: happy paths and the nasty cases.

Each negative test checks the OAuth error *and* that nothing was issued.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import func, select, update

from felles.db import Database
from felles.identity.models import AuthorizationCode, SsoSession
from felles.identity.service import PAR_URN
from felles.registry.models import DataAccess
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import (
    HIGH,
    SUBSTANTIAL,
    Pkce,
    Rp,
    client_assertion,
    query_of,
    sign_client_jwt,
    verify_id_token,
)

ISSUER = "http://testserver"


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# --- Discovery -----------------------------------------------------------------------------


async def test_discovery_lists_every_endpoint_and_only_true_capabilities(
    http: httpx.AsyncClient,
) -> None:
    doc = (await http.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == ISSUER
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "pushed_authorization_request_endpoint",
    ):
        assert doc[name].startswith(ISSUER + "/")
        path = doc[name][len(ISSUER) :]
        probe = await http.request("OPTIONS" if name != "jwks_uri" else "GET", path)
        assert probe.status_code != 404, name
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["acr_values_supported"] == [SUBSTANTIAL, HIGH]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    jwks = (await http.get("/jwks")).json()
    assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256"}
    assert all("d" not in k for k in jwks["keys"])  # never a private part


# --- The code flow -------------------------------------------------------------------------


async def test_full_code_flow_with_par_pkce_and_userinfo(
    rp: Rp, http: httpx.AsyncClient, pid: str
) -> None:
    pkce = Pkce()
    params = rp.authorize_params(pkce, login_hint=f"testid:{pid}_{HIGH}", acr_values=HIGH)
    par = await http.post("/par", data=params, auth=rp.auth)
    assert par.status_code == 201
    assert par.json()["request_uri"].startswith(PAR_URN)
    response = await http.get(
        "/authorize", params={"client_id": rp.client_id, "request_uri": par.json()["request_uri"]}
    )
    assert response.status_code == 303
    result = query_of(response.headers["location"])
    assert result["state"] == params["state"]
    assert result["iss"] == ISSUER  # RFC 9207
    tokens = (await rp.token(result["code"], pkce)).json()
    assert tokens["token_type"] == "Bearer"
    claims = await verify_id_token(http, tokens["id_token"], rp.client_id)
    assert claims["nonce"] == params["nonce"]
    assert claims["acr"] == HIGH
    assert claims["pid"] == pid
    assert claims["sub"] != pid  # pairwise, never the identity number
    assert {"auth_time", "sid", "amr", "locale"} <= set(claims)
    info = (await rp.userinfo(tokens["access_token"])).json()
    assert info["sub"] == claims["sub"] and info["pid"] == pid
    access = unverified_claims(tokens["access_token"])
    header = json.loads(base64.urlsafe_b64decode(tokens["access_token"].split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"  # RFC 9068
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope"} <= set(access)


async def test_request_uri_is_single_use_and_bound_to_its_client(
    rp: Rp, http: httpx.AsyncClient, db: Database, pid: str
) -> None:
    params = rp.authorize_params(Pkce(), login_hint=f"testid:{pid}_{SUBSTANTIAL}")
    uri = (await http.post("/par", data=params, auth=rp.auth)).json()["request_uri"]
    other, _ = await register(db)
    stolen = await http.get("/authorize", params={"client_id": other.client_id, "request_uri": uri})
    assert stolen.status_code == 400
    first = await http.get("/authorize", params={"client_id": rp.client_id, "request_uri": uri})
    assert first.status_code == 303
    again = await http.get("/authorize", params={"client_id": rp.client_id, "request_uri": uri})
    assert again.status_code == 400 and "location" not in again.headers


async def test_client_can_be_made_to_require_par(
    db: Database, http: httpx.AsyncClient, pid: str
) -> None:
    client, secret = await register(db, require_par=True)
    strict = Rp(http, client.client_id, secret, REDIRECT)
    response = await strict.authorize(Pkce(), login_hint=f"testid:{pid}_{SUBSTANTIAL}")
    assert query_of(response.headers["location"])["error"] == "invalid_request"


async def test_interactive_testid_login_and_sso_across_clients(
    rp: Rp, db: Database, http: httpx.AsyncClient, pid: str
) -> None:
    pkce = Pkce()
    start = await rp.authorize(pkce)
    assert start.status_code == 303 and start.headers["location"].startswith("/login?auth=")
    auth = query_of(start.headers["location"])["auth"]
    assert pid not in start.headers["location"]
    page = await http.get(f"/login/testid?auth={auth}")
    assert page.status_code == 200
    done = await http.post(
        "/login/testid",
        data={
            "auth": auth,
            "pid": pid,
            "acr": SUBSTANTIAL,
            "csrf_token": http.cookies["felles_csrf"],
        },
    )
    assert done.status_code == 303
    code = query_of(done.headers["location"])["code"]
    first = (await rp.token(code, pkce)).json()

    # Another service in another sector: no login page, same session, another sub.
    other_client, other_secret = await register(db, redirect_uris=["https://other.example/cb"])
    other = Rp(http, other_client.client_id, other_secret, "https://other.example/cb")
    pkce2 = Pkce()
    silent = await other.authorize(pkce2, prompt="none")
    assert silent.status_code == 303
    second = (await other.token(query_of(silent.headers["location"])["code"], pkce2)).json()
    one = unverified_claims(first["id_token"])
    two = unverified_claims(second["id_token"])
    assert one["sid"] == two["sid"]
    assert one["sub"] != two["sub"]  # pairwise per sector
    assert one["pid"] == two["pid"] == pid


async def test_testid_form_rejects_bad_numbers_with_an_error_summary(
    rp: Rp, http: httpx.AsyncClient
) -> None:
    start = await rp.authorize(Pkce())
    auth = query_of(start.headers["location"])["auth"]
    await http.get(f"/login/testid?auth={auth}")
    for bad in ("123", "01010112345", "x" * 11):
        response = await http.post(
            "/login/testid",
            data={"auth": auth, "pid": bad, "csrf_token": http.cookies["felles_csrf"]},
        )
        assert response.status_code == 400
        assert 'href="#pid"' in response.text and 'aria-invalid="true"' in response.text
    no_csrf = await http.post("/login/testid", data={"auth": auth, "pid": "x"})
    assert no_csrf.status_code == 403


async def test_prompt_none_without_session_says_login_required(rp: Rp) -> None:
    response = await rp.authorize(Pkce(), prompt="none")
    result = query_of(response.headers["location"])
    assert result["error"] == "login_required"
    assert "code" not in result


async def test_step_up_from_substantial_to_high(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    await rp.login(Pkce(), pid, SUBSTANTIAL)
    pkce = Pkce()
    needs_more = await rp.authorize(pkce, acr_values=HIGH, prompt="none")
    assert query_of(needs_more.headers["location"])["error"] == "interaction_required"
    interactive = await rp.authorize(pkce, acr_values=HIGH)
    assert interactive.headers["location"].startswith("/login?auth=")
    stepped = await rp.login(pkce, pid, HIGH, acr_values=HIGH)
    tokens = (await rp.token(stepped["code"], pkce)).json()
    assert unverified_claims(tokens["id_token"])["acr"] == HIGH
    # The session now holds high, so substantial requests are answered silently too.
    again = await rp.authorize(Pkce(), acr_values=SUBSTANTIAL, prompt="none")
    assert "code" in query_of(again.headers["location"])


async def test_max_age_and_prompt_login_force_a_fresh_login(rp: Rp, db: Database, pid: str) -> None:
    await rp.login(Pkce(), pid)
    assert "code" in query_of((await rp.authorize(Pkce(), max_age="3600")).headers["location"])
    async with db.session() as session:
        await session.execute(
            update(SsoSession).values(auth_time=datetime.now(UTC) - timedelta(minutes=10))
        )
    old = await rp.authorize(Pkce(), max_age="60")
    assert old.headers["location"].startswith("/login?auth=")
    assert (await rp.authorize(Pkce(), prompt="login")).headers["location"].startswith("/login")


async def test_sso_session_idle_limit(rp: Rp, db: Database, pid: str) -> None:
    await rp.login(Pkce(), pid)
    async with db.session() as session:
        await session.execute(
            update(SsoSession).values(last_seen=datetime.now(UTC) - timedelta(minutes=31))
        )
    response = await rp.authorize(Pkce(), prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_sso_session_survives_a_restart(
    rp: Rp, http: httpx.AsyncClient, settings: Any, pid: str
) -> None:
    from felles.app import create_app

    await rp.login(Pkce(), pid)
    restarted = create_app(settings)  # a new process: nothing in memory
    transport = httpx.ASGITransport(app=restarted)
    async with httpx.AsyncClient(
        transport=transport, base_url=ISSUER, cookies=http.cookies
    ) as fresh:
        again = Rp(fresh, rp.client_id, rp.secret, rp.redirect_uri)
        response = await again.authorize(Pkce(), prompt="none")
    assert "code" in query_of(response.headers["location"])


# --- Bad authorization requests ------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://rp.example/callback/extra",
        "https://rp.example/callbac",
        "https://rp.example/callback?x=1",
        "https://rp.example/Callback",
        "https://evil.example/callback",
        "https://rp.example.evil.example/callback",
        "http://rp.example/callback",
        "",
    ],
)
async def test_wrong_or_partial_redirect_uri_is_never_redirected_to(
    rp: Rp, http: httpx.AsyncClient, redirect_uri: str
) -> None:
    response = await rp.authorize(Pkce(), redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "We could not log you in" in response.text or "logge" in response.text
    par = await http.post(
        "/par", data=rp.authorize_params(Pkce(), redirect_uri=redirect_uri), auth=rp.auth
    )
    assert par.status_code == 400 and par.json()["error"] == "invalid_request"


async def test_unknown_client_gets_an_error_page(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/authorize", params={"client_id": "nobody", "redirect_uri": "https://evil.example/"}
    )
    assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"acr_values": "level9"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"nonce": "n" * 3000}, "invalid_request"),
    ],
)
async def test_bad_parameters_are_reported_to_the_client(
    rp: Rp, change: dict[str, Any], error: str
) -> None:
    pkce = Pkce()
    params = rp.authorize_params(pkce)
    state = params["state"]
    params.update(change)
    response = await rp.http.get(
        "/authorize", params={k: v for k, v in params.items() if v is not None}
    )
    assert response.status_code == 303
    result = query_of(response.headers["location"])
    assert result["error"] == error
    assert result["state"] == state
    assert "code" not in result


async def test_repeated_parameters_are_refused(rp: Rp, http: httpx.AsyncClient) -> None:
    pkce = Pkce()
    query = httpx.QueryParams(rp.authorize_params(pkce)).add("scope", "openid")
    response = await http.get("/authorize", params=query)
    assert response.status_code == 400


# --- The token endpoint --------------------------------------------------------------------


async def test_wrong_or_missing_pkce_verifier(rp: Rp, pid: str) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    for verifier in ("", "a" * 43, Pkce().verifier):
        response = await rp.token(code, pkce, code_verifier=verifier)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
    assert (await rp.token(code, pkce)).status_code == 200  # the right one still works


async def test_reused_code_revokes_what_was_issued(rp: Rp, pid: str) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    tokens = (await rp.token(code, pkce)).json()
    assert (await rp.userinfo(tokens["access_token"])).status_code == 200
    replay = await rp.token(code, pkce)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await rp.userinfo(tokens["access_token"])).status_code == 401
    assert (await rp.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_expired_code(rp: Rp, db: Database, pid: str) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    async with db.session() as session:
        await session.execute(
            update(AuthorizationCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await rp.token(code, pkce)
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The code has expired",
    }


async def test_code_used_by_another_client(
    rp: Rp, db: Database, http: httpx.AsyncClient, pid: str
) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    thief_client, thief_secret = await register(db)
    thief = Rp(http, thief_client.client_id, thief_secret, REDIRECT)
    stolen = await thief.token(code, pkce)
    assert stolen.json()["error"] == "invalid_grant"
    assert (await rp.token(code, pkce)).status_code == 200


async def test_wrong_redirect_uri_at_the_token_endpoint(rp: Rp, pid: str) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    response = await rp.token(code, pkce, redirect_uri=REDIRECT + "/x")
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "auth",
    [("nobody", "secret"), ("RIGHT_ID", "wrong-secret"), None],
)
async def test_bad_client_credentials(rp: Rp, pid: str, auth: tuple[str, str] | None) -> None:
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    if auth is not None and auth[0] == "RIGHT_ID":
        auth = (rp.client_id, auth[1])
    response = await rp.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": pkce.verifier,
            "client_id": rp.client_id,
        },
        auth=auth,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_client_secret_post(db: Database, http: httpx.AsyncClient, pid: str) -> None:
    client, secret = await register(db, auth_method="client_secret_post")
    rp = Rp(http, client.client_id, None, REDIRECT)
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    assert secret
    response = await rp.token(code, pkce, client_id=client.client_id, client_secret=secret)
    assert response.status_code == 200
    basic = await Rp(http, client.client_id, secret, REDIRECT).token(code, pkce)
    assert basic.status_code == 401  # registered for post, not basic


async def test_refresh_rotation_and_reuse_detection(rp: Rp, pid: str) -> None:
    first = await rp.tokens_for(pid)
    second = (await rp.refresh(first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert "id_token" not in second
    third = (await rp.refresh(second["refresh_token"])).json()
    assert (await rp.userinfo(third["access_token"])).status_code == 200
    # An attacker replays the first token: the whole family dies, including the newest.
    reuse = await rp.refresh(first["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    assert (await rp.refresh(third["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await rp.userinfo(third["access_token"])).status_code == 401


async def test_refresh_cannot_widen_scope(rp: Rp, pid: str) -> None:
    tokens = await rp.tokens_for(pid)
    response = await rp.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid profile",
        },
        auth=rp.auth,
    )
    assert response.json()["error"] == "invalid_scope"


async def test_introspection_and_revocation(rp: Rp, pid: str) -> None:
    tokens = await rp.tokens_for(pid)
    introspect = await rp.http.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=rp.auth
    )
    body = introspect.json()
    assert body["active"] is True and body["client_id"] == rp.client_id
    refresh_info = await rp.http.post(
        "/introspect", data={"token": tokens["refresh_token"]}, auth=rp.auth
    )
    assert refresh_info.json()["active"] is True
    assert (
        await rp.http.post("/revoke", data={"token": tokens["access_token"]}, auth=rp.auth)
    ).status_code == 200
    assert (await rp.userinfo(tokens["access_token"])).status_code == 401
    gone = await rp.http.post("/introspect", data={"token": tokens["access_token"]}, auth=rp.auth)
    assert gone.json() == {"active": False}
    await rp.http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=rp.auth)
    assert (await rp.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
    unknown = await rp.http.post("/revoke", data={"token": "nonsense"}, auth=rp.auth)
    assert unknown.status_code == 200  # RFC 7009: unknown tokens are not an error
    anonymous = await rp.http.post("/introspect", data={"token": tokens["refresh_token"]})
    assert anonymous.status_code == 401


async def test_tampered_tokens_are_refused(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    tokens = await rp.tokens_for(pid)
    header, _, signature = tokens["access_token"].split(".")
    claims = unverified_claims(tokens["access_token"])
    claims["scope"] = "openid profile admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (await rp.userinfo(f"{header}.{forged_payload}.{signature}")).status_code == 401
    from authlib.jose.errors import BadSignatureError

    id_header, _, id_sig = tokens["id_token"].split(".")
    id_claims = unverified_claims(tokens["id_token"])
    id_claims["pid"] = "01010112345"
    tampered = ".".join(
        [
            id_header,
            base64.urlsafe_b64encode(json.dumps(id_claims).encode()).rstrip(b"=").decode(),
            id_sig,
        ]
    )
    with pytest.raises(BadSignatureError):
        await verify_id_token(http, tampered, rp.client_id)
    logout = await http.get("/endsession", params={"id_token_hint": tampered})
    assert logout.status_code == 400
    # An HMAC token signed with our public key as the secret (the classic alg confusion).
    jwks = (await http.get("/jwks")).json()
    confused = jwt.encode(
        {"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]},
        {**claims, "exp": int(time.time()) + 60},
        OctKey.import_key(json.dumps(jwks["keys"][0]).encode()),
    )
    assert (await rp.userinfo(confused)).status_code == 401


# --- Machine tokens (Maskinporten) ---------------------------------------------------------


def grant(key: ECKey, client_id: str, scope: str, **overrides: Any) -> str:
    return client_assertion(key, client_id, ISSUER, scope=scope, sub=None, **overrides)


async def jwt_bearer(http: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await http.post(
        "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )


async def test_machine_token_names_the_consumer_organisation(
    http: httpx.AsyncClient, machine: Any, machine_key: ECKey
) -> None:
    scope = machine.scopes[0]
    response = await jwt_bearer(http, grant(machine_key, machine.client_id, scope))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == scope and body["expires_in"] <= 120
    claims = unverified_claims(body["access_token"])
    assert claims["consumer"]["ID"] == f"0192:{machine.orgnr}"
    assert "sub" not in claims and "pid" not in claims
    introspected = await http.post(
        "/introspect",
        data={
            "token": body["access_token"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(machine_key, machine.client_id, ISSUER),
        },
    )
    assert introspected.json()["active"] is True


async def test_machine_token_refusals(
    http: httpx.AsyncClient, machine: Any, machine_key: ECKey
) -> None:
    scope, not_granted = machine.scopes
    stranger = ECKey.generate_key("P-256")
    stranger.ensure_kid()
    cases = {
        "ungranted scope": grant(machine_key, machine.client_id, not_granted),
        "unknown scope": grant(machine_key, machine.client_id, "nobody:nothing"),
        "wrong audience": grant(machine_key, machine.client_id, scope, aud="https://other.example"),
        "too long-lived": grant(machine_key, machine.client_id, scope, exp=int(time.time()) + 600),
        "expired": grant(
            machine_key,
            machine.client_id,
            scope,
            iat=int(time.time()) - 300,
            exp=int(time.time()) - 200,
        ),
        "no jti": grant(machine_key, machine.client_id, scope, jti=None),
        "wrong key": grant(stranger, machine.client_id, scope),
    }
    for name, assertion in cases.items():
        response = await jwt_bearer(http, assertion)
        assert response.status_code in (400, 401), name
        assert response.json()["error"] in ("invalid_grant", "invalid_scope"), name
        assert "access_token" not in response.json(), name


async def test_replayed_and_unsigned_grants(
    http: httpx.AsyncClient, machine: Any, machine_key: ECKey
) -> None:
    scope = machine.scopes[0]
    assertion = grant(machine_key, machine.client_id, scope)
    assert (await jwt_bearer(http, assertion)).status_code == 200
    replay = await jwt_bearer(http, assertion)
    assert (
        replay.json()["error"] == "invalid_grant" and "replay" in replay.json()["error_description"]
    )
    now = int(time.time())
    claims = {
        "iss": machine.client_id,
        "aud": ISSUER,
        "scope": scope,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        + "."
    )
    assert (await jwt_bearer(http, unsigned)).json()["error"] == "invalid_grant"
    hmac_signed = jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256))
    assert (await jwt_bearer(http, hmac_signed)).json()["error"] == "invalid_grant"


async def test_private_key_jwt_client_authentication(
    db: Database, http: httpx.AsyncClient, pid: str
) -> None:
    key = RSAKey.generate_key(2048)
    key.ensure_kid()
    from tests.identity.oidc import keyset

    client, _ = await register(db, auth_method="private_key_jwt", jwks=keyset(key))
    rp = Rp(http, client.client_id, None, REDIRECT)

    async def exchange(assertion: str) -> httpx.Response:
        pkce = Pkce()
        code = (await rp.login(pkce, pid))["code"]
        return await rp.token(
            code,
            pkce,
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=assertion,
        )

    def assertion(**overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": ISSUER + "/token",
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return sign_client_jwt(key, claims, alg="RS256")

    good = assertion()
    assert (await exchange(good)).status_code == 200
    assert (await exchange(good)).json()["error"] == "invalid_client"  # replayed jti
    assert (await exchange(assertion(aud="https://elsewhere.example"))).status_code == 401
    assert (await exchange(assertion(exp=int(time.time()) - 60))).status_code == 401
    assert (await exchange(assertion(sub="someone-else"))).status_code == 401


# --- Logout --------------------------------------------------------------------------------


async def test_logout_with_registered_redirect(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    tokens = await rp.tokens_for(pid)
    response = await http.get(
        "/endsession",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://rp.example/bye",
            "state": "s1",
        },
    )
    assert response.status_code == 200
    assert "https://rp.example/bye?state=s1" in response.text
    assert (await rp.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
    silent = await rp.authorize(Pkce(), prompt="none")
    assert query_of(silent.headers["location"])["error"] == "login_required"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "https://rp.example/bye/../evil",
        "//evil.example",
        "https://rp.example/by",
    ],
)
async def test_logout_is_no_open_redirect(
    rp: Rp, http: httpx.AsyncClient, pid: str, target: str
) -> None:
    tokens = await rp.tokens_for(pid)
    response = await http.get(
        "/endsession",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": target},
    )
    assert response.status_code == 400
    assert target not in response.text.replace("&amp;", "&") or "evil" not in response.headers.get(
        "location", ""
    )
    assert "location" not in response.headers
    # Nothing was ended by the refused request.
    assert (await rp.refresh(tokens["refresh_token"])).status_code == 200


async def test_front_channel_logout_frames_every_client_of_the_session(
    db: Database, http: httpx.AsyncClient, pid: str
) -> None:
    client, secret = await register(
        db,
        redirect_uris=["https://front.example/cb"],
        frontchannel_logout_uri="https://front.example/logout",
        post_logout_redirect_uris=["https://front.example/bye"],
    )
    rp = Rp(http, client.client_id, secret, "https://front.example/cb")
    tokens = await rp.tokens_for(pid)
    sid = unverified_claims(tokens["id_token"])["sid"]
    page = await http.get("/endsession", params={"id_token_hint": tokens["id_token"]})
    assert page.status_code == 200
    assert (
        f'src="https://front.example/logout?iss=http%3A%2F%2Ftestserver&amp;sid={sid}"' in page.text
    )
    assert "frame-src https://front.example" in page.headers["content-security-policy"]


async def test_sso_session_absolute_limit(rp: Rp, db: Database, pid: str) -> None:
    await rp.login(Pkce(), pid)
    async with db.session() as session:
        await session.execute(
            update(SsoSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await rp.authorize(Pkce(), prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_ui_locales_sets_the_locale_claim(rp: Rp, pid: str) -> None:
    tokens = await rp.tokens_for(pid, ui_locales="nn en")
    assert unverified_claims(tokens["id_token"])["locale"] == "nn"


async def test_logout_without_hint_asks_first(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    tokens = await rp.tokens_for(pid)
    forced = await http.get("/endsession")  # e.g. an <img> on someone else's page
    assert forced.status_code == 200 and 'action="/endsession/confirm"' in forced.text
    assert (await rp.refresh(tokens["refresh_token"])).status_code == 200  # still logged in
    no_csrf = await http.post("/endsession/confirm", data={})
    assert no_csrf.status_code == 403
    confirmed = await http.post(
        "/endsession/confirm",
        data={
            "client_id": rp.client_id,
            "post_logout_redirect_uri": "https://rp.example/bye",
            "csrf_token": http.cookies["felles_csrf"],
        },
    )
    assert confirmed.status_code == 200 and "https://rp.example/bye" in confirmed.text
    silent = await rp.authorize(Pkce(), prompt="none")
    assert query_of(silent.headers["location"])["error"] == "login_required"


async def profile_reads(db: Database, pid: str) -> int:
    async with db.session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(DataAccess)
            .where(DataAccess.pid == pid, DataAccess.purpose == "userinfo (profile)")
        )
    return int(found or 0)


async def test_a_revoked_token_reads_no_profile(rp: Rp, db: Database, pid: str) -> None:
    """userinfo checks revocation in the statement that reads the profile (PostgreSQL)
    or just before it (SQLite): a revoked token reads and records nothing."""
    pkce = Pkce()
    code = (await rp.login(pkce, pid, scope="openid profile"))["code"]
    tokens = (await rp.token(code, pkce)).json()
    before = await profile_reads(db, pid)
    answer = await rp.userinfo(tokens["access_token"])
    assert answer.status_code == 200 and answer.json()["family_name"]
    assert await profile_reads(db, pid) == before + 1  # the register recorded the read
    revoked = await rp.http.post("/revoke", data={"token": tokens["access_token"]}, auth=rp.auth)
    assert revoked.status_code == 200
    refused = await rp.userinfo(tokens["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert await profile_reads(db, pid) == before + 1  # nothing read, nothing recorded
