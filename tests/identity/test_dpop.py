"""DPoP (RFC 9449): sender-constrained tokens, and what happens to a stolen one."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from felles.db import Database
from felles.identity.dpop import access_token_hash
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import SUBSTANTIAL, Pkce, Rp, client_assertion
from tests.identity.test_oidc import unverified_claims

ISSUER = "http://testserver"


class Holder:
    """A client's DPoP key, making proofs as a client library would."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, token: str | None = None, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if token is not None:
            claims["ath"] = access_token_hash(token)
        claims.update(overrides)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])


async def dpop_tokens(rp: Rp, holder: Holder, pid: str) -> dict[str, Any]:
    pkce = Pkce()
    code = (await rp.login(pkce, pid, SUBSTANTIAL))["code"]
    response = await rp.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": pkce.verifier,
        },
        auth=rp.auth,
        headers={"dpop": holder.proof("POST", f"{ISSUER}/token")},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def userinfo(
    http: httpx.AsyncClient, token: str, proof: str | None, scheme: str = "DPoP"
) -> httpx.Response:
    headers = {"authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["dpop"] = proof
    return await http.get("/userinfo", headers=headers)


async def test_bound_tokens_work_only_with_the_key(
    rp: Rp, http: httpx.AsyncClient, pid: str
) -> None:
    holder = Holder()
    tokens = await dpop_tokens(rp, holder, pid)
    assert tokens["token_type"] == "DPoP"
    access = tokens["access_token"]
    good = await userinfo(http, access, holder.proof("GET", f"{ISSUER}/userinfo", access))
    assert good.status_code == 200 and good.json()["pid"] == pid

    # A thief with the token but not the key:
    assert (await userinfo(http, access, None, scheme="Bearer")).status_code == 401
    assert (await userinfo(http, access, None)).status_code == 401
    thief = Holder()
    stolen = await userinfo(http, access, thief.proof("GET", f"{ISSUER}/userinfo", access))
    assert stolen.status_code == 401
    assert "invalid_dpop_proof" in stolen.headers["www-authenticate"]


async def test_bad_proofs_are_refused(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    holder = Holder()
    access = (await dpop_tokens(rp, holder, pid))["access_token"]
    url = f"{ISSUER}/userinfo"
    replayed = holder.proof("GET", url, access)
    assert (await userinfo(http, access, replayed)).status_code == 200
    bad = {
        "replayed": replayed,
        "wrong method": holder.proof("POST", url, access),
        "wrong url": holder.proof("GET", f"{ISSUER}/token", access),
        "old": holder.proof("GET", url, access, iat=int(time.time()) - 600),
        "future": holder.proof("GET", url, access, iat=int(time.time()) + 600),
        "no ath": holder.proof("GET", url),
        "other token's ath": holder.proof("GET", url, "another-token"),
    }
    for name, proof in bad.items():
        assert (await userinfo(http, access, proof)).status_code == 401, name
    private_in_header = jwt.encode(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": holder.key.as_dict(private=True)},
        {
            "jti": secrets.token_urlsafe(16),
            "htm": "GET",
            "htu": url,
            "iat": int(time.time()),
            "ath": access_token_hash(access),
        },
        holder.key,
    )
    assert (await userinfo(http, access, private_in_header)).status_code == 401


async def test_refresh_tokens_stay_bound_to_the_key(rp: Rp, pid: str) -> None:
    holder = Holder()
    tokens = await dpop_tokens(rp, holder, pid)
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    without = await rp.http.post("/token", data=data, auth=rp.auth)
    assert without.json()["error"] == "invalid_grant"
    other = await rp.http.post(
        "/token",
        data=data,
        auth=rp.auth,
        headers={"dpop": Holder().proof("POST", f"{ISSUER}/token")},
    )
    assert other.json()["error"] == "invalid_grant"
    same = await rp.http.post(
        "/token", data=data, auth=rp.auth, headers={"dpop": holder.proof("POST", f"{ISSUER}/token")}
    )
    assert same.status_code == 200 and same.json()["token_type"] == "DPoP"


async def test_dpop_jkt_at_par_binds_the_code(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    holder = Holder()
    pkce = Pkce()
    params = rp.authorize_params(
        pkce, login_hint=f"testid:{pid}_{SUBSTANTIAL}", dpop_jkt=holder.jkt
    )
    uri = (await http.post("/par", data=params, auth=rp.auth)).json()["request_uri"]
    redirect = await http.get("/authorize", params={"client_id": rp.client_id, "request_uri": uri})
    code = httpx.URL(redirect.headers["location"]).params["code"]
    plain = await rp.token(code, pkce)
    assert plain.json()["error"] == "invalid_grant"  # a stolen code cannot be redeemed


async def test_client_that_requires_dpop(db: Database, http: httpx.AsyncClient, pid: str) -> None:
    client, secret = await register(db, require_dpop=True)
    rp = Rp(http, client.client_id, secret, REDIRECT)
    pkce = Pkce()
    code = (await rp.login(pkce, pid))["code"]
    refused = await rp.token(code, pkce)
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert (await dpop_tokens(rp, Holder(), pid))["token_type"] == "DPoP"


async def test_machine_tokens_can_be_bound(
    http: httpx.AsyncClient, machine: Any, machine_key: ECKey
) -> None:
    holder = Holder()
    assertion = client_assertion(
        machine_key, machine.client_id, ISSUER, scope=machine.scopes[0], sub=None
    )
    response = await http.post(
        "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        headers={"dpop": holder.proof("POST", f"{ISSUER}/token")},
    )
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert unverified_claims(body["access_token"])["cnf"] == {"jkt": holder.jkt}


async def test_discovery_announces_dpop(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/.well-known/openid-configuration")).json()
    assert "ES256" in doc["dpop_signing_alg_values_supported"]
