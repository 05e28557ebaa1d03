"""Interop: Authlib's AsyncOAuth2Client (Python, httpx) drives the real provider.

The relying party's side is Authlib's: the authorization URL with PKCE S256, the code
grant with the code verifier, refresh, revocation and introspection, and client
authentication with client_secret_basic or Authlib's `PrivateKeyJWT`. The ID token is
checked the way Authlib's own OpenID integrations do it (joserfc's `jwt.decode`
against the provider's JWKS, then `authlib.oidc.core.CodeIDToken` claims validation),
so the deprecated `authlib.jose` is never imported. The browser's part (following the
authorization URL; TestID's login_hint logs in without pages) is a plain httpx client
that keeps cookies and does not follow redirects.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oidc.core import CodeIDToken, UserInfo
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import JWSRegistry

from felles.db import Database
from felles.identity import clients
from felles.registry import service as registry

HIGH = "idporten-loa-high"
SUBSTANTIAL = "idporten-loa-substantial"
REDIRECT_URI = "http://127.0.0.1/authlib/callback"
ASSERTION_SECONDS = 60


@dataclass(frozen=True)
class Provider:
    """What the relying party learns from discovery, and the provider's keys."""

    metadata: dict[str, Any]
    keys: KeySet

    @property
    def issuer(self) -> str:
        return str(self.metadata["issuer"])

    def __getitem__(self, name: str) -> str:
        return str(self.metadata[name])


@pytest.fixture(scope="module")
async def provider(live_server: str) -> Provider:
    async with httpx.AsyncClient(base_url=live_server) as http:
        metadata = (await http.get("/.well-known/openid-configuration")).raise_for_status().json()
        jwks = (await http.get(metadata["jwks_uri"])).raise_for_status().json()
    assert metadata["issuer"] == live_server
    return Provider(metadata, KeySet.import_key_set(jwks))


@dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str | None = None
    key: ECKey | None = None


async def _register(db: Database, **fields: Any) -> tuple[clients.ClientRecord, str | None]:
    async with db.session() as session:
        return await clients.add_client(
            session,
            clients.NewClient(
                name="Authlib interop",
                redirect_uris=[REDIRECT_URI],
                scopes=["openid", "profile"],
                **fields,
            ),
        )


@pytest.fixture(scope="module")
async def secret_client(db: Database) -> Registered:
    client, secret = await _register(db, auth_method="client_secret_basic")
    assert secret is not None
    return Registered(client.client_id, secret=secret)


@pytest.fixture(scope="module")
async def jwt_client(db: Database) -> Registered:
    """A client that proves itself with a key pair; only the public half is registered."""
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    public = key.as_dict(private=False)
    client, secret = await _register(
        db, auth_method="private_key_jwt", jwks={"keys": [{**public, "use": "sig"}]}
    )
    assert secret is None
    return Registered(client.client_id, key=key)


@pytest.fixture(scope="module")
async def people(db: Database) -> list[str]:
    async with db.session() as session:
        return [p.pid for p in await registry.list_people(session, limit=3, offset=21)]


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT, but the assertion lives 60 s instead of Authlib's 3600 s.

    Felles, like Maskinporten, refuses client assertions that live longer than 120 s
    (RFC 7523 3 lets a server reject an `exp` "unreasonably far in the future").
    Authlib has no lifetime option on PrivateKeyJWT, and its `claims` argument is a
    fixed dict (a fixed `exp`, and the `jti` Authlib adds to it would repeat), so the
    documented extension point is a subclass that signs with Authlib's own function.
    """

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return str(
            private_key_jwt_sign(
                auth.client_secret,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                header=dict(self.headers or {}),
                expires_in=ASSERTION_SECONDS,
            )
        )


@pytest.fixture
async def rp(provider: Provider, secret_client: Registered) -> AsyncIterator[AsyncOAuth2Client]:
    async with AsyncOAuth2Client(
        client_id=secret_client.client_id,
        client_secret=secret_client.secret,
        token_endpoint_auth_method="client_secret_basic",
        scope="openid profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
async def jwt_rp(provider: Provider, jwt_client: Registered) -> AsyncIterator[AsyncOAuth2Client]:
    async with AsyncOAuth2Client(
        client_id=jwt_client.client_id,
        client_secret=jwt_client.key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        scope="openid profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    ) as client:
        client.register_client_auth_method(
            ShortLivedPrivateKeyJWT(provider["token_endpoint"], alg="ES256")
        )
        yield client


@dataclass
class Login:
    """An authorization response and what the relying party must remember to check it."""

    location: str
    state: str
    nonce: str
    code_verifier: str

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}


async def authorize(
    client: AsyncOAuth2Client,
    provider: Provider,
    pid: str,
    acr: str = HIGH,
    browser: httpx.AsyncClient | None = None,
    **extra: str,
) -> Login:
    """Authlib builds the authorization URL; a cookie-keeping 'browser' follows it once."""
    code_verifier = generate_token(48)
    nonce = generate_token(20)
    params = {"nonce": nonce, "acr_values": acr, "login_hint": f"testid:{pid}_{acr}", **extra}
    url, state = client.create_authorization_url(
        provider["authorization_endpoint"], code_verifier=code_verifier, **params
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url SHA-256, RFC 7636 4.2
    if browser is None:
        async with httpx.AsyncClient(follow_redirects=False) as fresh:
            response = await fresh.get(url)
    else:
        response = await browser.get(url)
    assert response.status_code in (302, 303), response.text[:500]
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return Login(location, state, nonce, code_verifier)


async def code_grant(client: AsyncOAuth2Client, provider: Provider, login: Login) -> Any:
    """The callback: RFC 9207 `iss` (Authlib leaves it to us), then Authlib's code grant,
    which checks `state` and sends the code_verifier."""
    assert login.query["iss"] == provider.issuer
    return await client.fetch_token(
        provider["token_endpoint"],
        authorization_response=login.location,
        state=login.state,
        code_verifier=login.code_verifier,
    )


def verify_id_token(
    provider: Provider, client_id: str, token: dict[str, Any], nonce: str, acr: str = HIGH
) -> CodeIDToken:
    """As Authlib's AsyncOpenIDMixin.parse_id_token does it, with stricter options."""
    algorithms = provider.metadata["id_token_signing_alg_values_supported"]
    decoded = jwt.decode(
        token["id_token"],
        provider.keys,
        registry=JWSRegistry(algorithms=algorithms, strict_check_header=False),
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": provider.issuer},
            "aud": {"essential": True, "value": client_id},
            "sub": {"essential": True},
            "acr": {"essential": True, "value": acr},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=10)
    return claims


# --- client_secret_basic ------------------------------------------------------------------


async def test_code_flow_with_pkce_id_token_and_userinfo(
    rp: AsyncOAuth2Client, provider: Provider, secret_client: Registered, people: list[str]
) -> None:
    pid = people[0]
    login = await authorize(rp, provider, pid)
    assert set(login.query) == {"code", "state", "iss"}
    token = await code_grant(rp, provider, login)
    assert token["token_type"].lower() == "bearer"
    assert token["scope"].split() == ["openid", "profile"]
    assert {"access_token", "id_token", "refresh_token", "expires_at"} <= set(token)

    claims = verify_id_token(provider, secret_client.client_id, token, login.nonce)
    assert claims["pid"] == pid
    assert claims["sub"] != pid and pid not in claims["sub"]  # pairwise
    assert claims["amr"] == ["TestID"]
    assert claims["sid"]

    response = await rp.get(provider["userinfo_endpoint"])  # Authlib adds the bearer token
    assert response.status_code == 200
    info = UserInfo(response.json())
    assert info["sub"] == claims["sub"]  # OIDC Core 5.3.2
    assert info["pid"] == pid
    assert info["name"] and info["given_name"] and info["family_name"] and info["birthdate"]


async def test_a_tampered_pkce_verifier_is_refused(
    rp: AsyncOAuth2Client, provider: Provider, people: list[str]
) -> None:
    login = await authorize(rp, provider, people[0])
    login.code_verifier = generate_token(48)
    with pytest.raises(OAuthError) as refused:
        await code_grant(rp, provider, login)
    assert refused.value.error == "invalid_grant"  # RFC 7636 4.6


async def test_refresh_then_revoke_then_introspect(
    rp: AsyncOAuth2Client, provider: Provider, secret_client: Registered, people: list[str]
) -> None:
    login = await authorize(rp, provider, people[1], acr=SUBSTANTIAL)
    first = await code_grant(rp, provider, login)
    claims = verify_id_token(provider, secret_client.client_id, first, login.nonce, acr=SUBSTANTIAL)

    refreshed = await rp.refresh_token(
        provider["token_endpoint"], refresh_token=first["refresh_token"]
    )
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]  # rotated
    assert refreshed["scope"].split() == ["openid", "profile"]

    introspection = provider["introspection_endpoint"]
    access = (await rp.introspect_token(introspection, token=refreshed["access_token"])).json()
    assert access["active"] is True
    assert access["client_id"] == secret_client.client_id
    assert access["sub"] == claims["sub"]
    assert access["acr"] == SUBSTANTIAL
    assert access["exp"] > time.time()
    refresh = (
        await rp.introspect_token(
            introspection, token=refreshed["refresh_token"], token_type_hint="refresh_token"
        )
    ).json()
    assert refresh["active"] is True
    assert refresh["sub"] == claims["sub"]

    # RFC 7009: revoking the refresh token; it and the access tokens of its grant die.
    revoked = await rp.revoke_token(
        provider["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    for dead in (refreshed["refresh_token"], refreshed["access_token"]):
        assert (await rp.introspect_token(introspection, token=dead)).json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        await rp.refresh_token(provider["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"
    rp.token = refreshed
    assert (await rp.get(provider["userinfo_endpoint"])).status_code == 401


async def test_revoking_only_the_access_token(
    rp: AsyncOAuth2Client, provider: Provider, people: list[str]
) -> None:
    token = await code_grant(rp, provider, await authorize(rp, provider, people[2]))
    revoked = await rp.revoke_token(
        provider["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    introspection = provider["introspection_endpoint"]
    dead = await rp.introspect_token(introspection, token=token["access_token"])
    assert dead.json() == {"active": False}
    assert (await rp.get(provider["userinfo_endpoint"])).status_code == 401


async def test_sso_and_prompt_none_with_authlib(
    rp: AsyncOAuth2Client, provider: Provider, secret_client: Registered, people: list[str]
) -> None:
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        first_login = await authorize(rp, provider, people[0], browser=browser)
        first = await code_grant(rp, provider, first_login)
        first_claims = verify_id_token(provider, secret_client.client_id, first, first_login.nonce)
        silent_login = await authorize(rp, provider, people[0], browser=browser, prompt="none")
        silent = await code_grant(rp, provider, silent_login)
        silent_claims = verify_id_token(
            provider, secret_client.client_id, silent, silent_login.nonce
        )
    assert silent_claims["sid"] == first_claims["sid"]
    assert silent_claims["sub"] == first_claims["sub"]
    async with httpx.AsyncClient(follow_redirects=False) as stranger:
        refused = await authorize(rp, provider, people[0], browser=stranger, prompt="none")
    assert refused.query["error"] == "login_required"  # OIDC Core 3.1.2.6
    assert refused.query["state"] == refused.state
    assert refused.query["iss"] == provider.issuer


# --- private_key_jwt ----------------------------------------------------------------------


async def test_private_key_jwt_code_flow_refresh_introspect_and_revoke(
    jwt_rp: AsyncOAuth2Client, provider: Provider, jwt_client: Registered, people: list[str]
) -> None:
    pid = people[1]
    login = await authorize(jwt_rp, provider, pid)
    token = await code_grant(jwt_rp, provider, login)
    claims = verify_id_token(provider, jwt_client.client_id, token, login.nonce)
    assert claims["pid"] == pid
    assert claims["aud"] == jwt_client.client_id

    # Each request signs a fresh assertion (new jti), so none is refused as a replay.
    refreshed = await jwt_rp.refresh_token(
        provider["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    introspection = provider["introspection_endpoint"]
    active = await jwt_rp.introspect_token(introspection, token=refreshed["access_token"])
    assert active.json()["active"] is True
    assert active.json()["client_id"] == jwt_client.client_id
    revoked = await jwt_rp.revoke_token(
        provider["revocation_endpoint"], token=refreshed["refresh_token"]
    )
    assert revoked.status_code == 200
    dead = await jwt_rp.introspect_token(introspection, token=refreshed["refresh_token"])
    assert dead.json() == {"active": False}


async def test_authlib_default_private_key_jwt_lifetime_is_refused(
    provider: Provider, jwt_client: Registered, people: list[str]
) -> None:
    """Authlib's PrivateKeyJWT as it comes signs assertions valid for 3600 s; Felles
    accepts at most 120 s (as Maskinporten does) and says so in the error."""
    async with AsyncOAuth2Client(
        client_id=jwt_client.client_id,
        client_secret=jwt_client.key,
        token_endpoint_auth_method="private_key_jwt",
        scope="openid",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    ) as client:
        client.register_client_auth_method(PrivateKeyJWT(provider["token_endpoint"], alg="ES256"))
        login = await authorize(client, provider, people[2])
        with pytest.raises(OAuthError) as refused:
            await code_grant(client, provider, login)
    assert refused.value.error == "invalid_client"
    assert "120 seconds" in (refused.value.description or "")


# --- a public client at the introspection endpoint ----------------------------------------


@pytest.fixture(scope="module")
async def public_client(db: Database) -> Registered:
    client, secret = await _register(db, auth_method="none")
    assert secret is None
    return Registered(client.client_id)


async def test_a_public_client_cannot_introspect_tokens(
    rp: AsyncOAuth2Client, provider: Provider, public_client: Registered, people: list[str]
) -> None:
    assert "none" not in provider.metadata["introspection_endpoint_auth_methods_supported"]
    token = await code_grant(rp, provider, await authorize(rp, provider, people[0]))
    async with AsyncOAuth2Client(
        client_id=public_client.client_id, token_endpoint_auth_method="none"
    ) as public:
        response = await public.introspect_token(
            provider["introspection_endpoint"], token=token["access_token"]
        )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "pid" not in response.text
