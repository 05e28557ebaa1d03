"""Minting and checking the JWTs the login service issues.

ID tokens (OpenID Connect Core), JWT access tokens (RFC 9068, header `typ: at+jwt`)
and logout tokens (OpenID Connect Back-Channel Logout). Signing goes through joserfc
with keys from the KeyStore; nothing here builds or parses a JWT by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from felles.identity.crypto import random_token
from felles.identity.keys import KeyStore

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105
ACCESS_TOKEN_ALG = "ES256"  # noqa: S105
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ID_TOKEN_SECONDS = 120
LOGOUT_TOKEN_SECONDS = 120
CLOCK_SKEW_SECONDS = 10


class InvalidToken(ValueError):
    """A token that is malformed, badly signed, expired or not ours."""


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


class TokenIssuer:
    """Signs tokens for one issuer and verifies the access tokens it issued."""

    def __init__(self, keys: KeyStore, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self._access_claims = JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": issuer},
            exp={"essential": True},
            jti={"essential": True},
        )

    async def _sign(self, claims: dict[str, Any], alg: str, typ: str = "JWT") -> str:
        key = await self.keys.signing_key(alg)
        header = {"alg": alg, "kid": key.kid, "typ": typ}
        return jwt.encode(header, claims, key, algorithms=[alg])

    async def id_token(
        self,
        *,
        client_id: str,
        alg: str,
        sub: str,
        claims: dict[str, Any],
        nonce: str | None,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "jti": random_token(16),
            **claims,
        }
        if nonce is not None:
            body["nonce"] = nonce
        return await self._sign(body, alg)

    async def access_token(
        self,
        *,
        client_id: str,
        scope: str,
        lifetime: int,
        audience: str | list[str],
        sub: str | None = None,
        family: str | None = None,
        jkt: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedAccessToken:
        """An RFC 9068 access token. `family` prefixes the jti so a whole family can be
        revoked at once (a reused code or refresh token)."""
        now = int(time.time())
        jti = f"{family}.{random_token(12)}" if family else random_token(16)
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
            "scope": scope,
            **(extra or {}),
        }
        if sub is not None:
            body["sub"] = sub
        if jkt is not None:
            body["cnf"] = {"jkt": jkt}
        token = await self._sign(body, ACCESS_TOKEN_ALG, ACCESS_TOKEN_TYPE)
        return IssuedAccessToken(token=token, jti=jti, expires_in=lifetime)

    async def logout_token(self, *, client_id: str, alg: str, sub: str, sid: str) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_SECONDS,
            "jti": random_token(16),
            "sub": sub,
            "sid": sid,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        return await self._sign(body, alg, LOGOUT_TOKEN_TYPE)

    async def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of one of our access tokens, or InvalidToken (revocation is the
        caller's check: it needs the database)."""
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise InvalidToken("not a JWT")
        try:
            decoded = jwt.decode(token, await self.keys.verification_keys(), [ACCESS_TOKEN_ALG])
        except (JoseError, ValueError) as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from exc
        if decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("not an access token")
        claims = dict(decoded.claims)
        try:
            self._access_claims.validate(claims)
        except JoseError as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from exc
        return claims
