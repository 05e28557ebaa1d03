"""Test helpers: a relying party that drives Felles' login flows over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from felles.identity.levels import HIGH, SUBSTANTIAL

__all__ = ["HIGH", "SUBSTANTIAL", "Pkce", "Rp", "sign_client_jwt"]


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def sign_client_jwt(
    key: RSAKey | ECKey,
    claims: dict[str, Any],
    alg: str = "ES256",
    header: dict[str, Any] | None = None,
) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, claims, key, algorithms=[alg])


def client_assertion(key: ECKey, client_id: str, audience: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    return sign_client_jwt(key, {k: v for k, v in claims.items() if v is not None})


@dataclass
class Rp:
    """A confidential client using client_secret_basic, as most public services do."""

    http: httpx.AsyncClient
    client_id: str
    secret: str | None
    redirect_uri: str
    issuer: str = "http://testserver"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.client_id, self.secret) if self.secret else None

    def authorize_params(self, pkce: Pkce, **extra: str) -> dict[str, str]:
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": self.redirect_uri,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    async def authorize(self, pkce: Pkce, **extra: str) -> httpx.Response:
        return await self.http.get("/authorize", params=self.authorize_params(pkce, **extra))

    async def login(
        self, pkce: Pkce, pid: str, acr: str = SUBSTANTIAL, **extra: str
    ) -> dict[str, str]:
        """A headless TestID login; returns the redirect's query (code, state, iss)."""
        response = await self.authorize(pkce, login_hint=f"testid:{pid}_{acr}", **extra)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(self.redirect_uri), location
        return query_of(location)

    async def token(self, code: str, pkce: Pkce, **extra: str) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pkce.verifier,
        }
        data.update(extra)
        return await self.http.post("/token", data=data, auth=self.auth)

    async def tokens_for(self, pid: str, acr: str = SUBSTANTIAL, **extra: str) -> dict[str, Any]:
        pkce = Pkce()
        code = (await self.login(pkce, pid, acr, **extra))["code"]
        response = await self.token(code, pkce)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=self.auth,
        )

    async def userinfo(self, access_token: str) -> httpx.Response:
        return await self.http.get("/userinfo", headers={"authorization": f"Bearer {access_token}"})


async def verify_id_token(http: httpx.AsyncClient, token: str, client_id: str) -> dict[str, Any]:
    """Verify an ID token the way a relying party does, with Authlib (not our code)."""
    from authlib.jose import JsonWebToken

    keys = (await http.get("/jwks")).json()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = JsonWebToken([header["alg"]]).decode(
        token,
        keys,
        claims_options={
            "iss": {"essential": True, "value": "http://testserver"},
            "aud": {"essential": True, "value": client_id},
        },
    )
    claims.validate()
    return dict(claims)


def keyset(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return KeySet(list(keys)).as_dict(private=False)
