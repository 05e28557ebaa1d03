"""Who is calling the token endpoint: client authentication (RFC 6749, RFC 7523).

client_secret_basic, client_secret_post and private_key_jwt. Signed client JWTs
(client assertions and JWT bearer grants) must be asymmetric (no `none`, no HMAC),
short-lived, for our audience, and used once: their `jti` is remembered until they
expire, in the database, so a replay is refused on every app process.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import Table, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import dialect_name, fetch_value
from felles.identity import clients
from felles.identity.clients import ClientRecord, UnknownClient
from felles.identity.errors import OAuthError, invalid_client, invalid_grant
from felles.identity.models import SeenJti

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_JWT_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
MAX_JWT_LIFETIME_SECONDS = 120
LEEWAY_SECONDS = 10


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("The Basic credentials are not valid base64") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client("The Basic credentials have no colon")
    # RFC 6749 2.3.1: both parts are form-urlencoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def authenticate_client(
    session: AsyncSession,
    form: dict[str, str],
    authorization: str | None,
    audiences: set[str],
) -> ClientRecord:
    """The client making this request, proven by the method it registered."""
    basic = _basic_credentials(authorization)
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if sum(bool(x) for x in (basic, form.get("client_secret"), assertion)) > 1:
        raise OAuthError("invalid_request", "Use exactly one client authentication method")

    if basic is not None:
        client_id, secret = basic
        if form.get("client_id") not in (None, client_id):
            raise invalid_client("client_id does not match the Basic credentials")
        return await _secret_client(session, client_id, secret, "client_secret_basic")

    if form.get("client_secret"):
        return await _secret_client(
            session, form.get("client_id", ""), form["client_secret"], "client_secret_post"
        )

    if assertion:
        if assertion_type != ASSERTION_TYPE:
            raise invalid_client("client_assertion_type must be " + ASSERTION_TYPE)
        client, _claims = await verify_client_jwt(
            session, assertion, audiences, expected_client_id=form.get("client_id")
        )
        if client.auth_method != "private_key_jwt":
            raise invalid_client("This client does not authenticate with private_key_jwt")
        return client

    client_id = form.get("client_id", "")
    client = await _client(session, client_id)
    if client.auth_method != "none":
        raise invalid_client("Client authentication is required")
    return client


async def _client(session: AsyncSession, client_id: str) -> ClientRecord:
    if not client_id or len(client_id) > 64:
        raise invalid_client("Unknown client")
    try:
        return await clients.get_client(session, client_id)
    except UnknownClient:
        raise invalid_client("Unknown client") from None


async def _secret_client(
    session: AsyncSession, client_id: str, secret: str, method: str
) -> ClientRecord:
    client = await clients.verify_secret(session, client_id, secret)
    if client is None:
        raise invalid_client("Unknown client or wrong secret")
    if client.auth_method != method:
        raise invalid_client(f"This client is registered for {client.auth_method}")
    return client


def _peek(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to find the client and its key."""
    if not isinstance(assertion, str) or assertion.count(".") != 2 or len(assertion) > 8192:
        raise invalid_client("The client assertion is not a JWT")
    try:
        compact = extract_compact(assertion.encode())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError) as exc:
        raise invalid_client("The client assertion is not a JWT") from exc
    if not isinstance(claims, dict):
        raise invalid_client("The client assertion is not a JWT")
    return compact.headers(), claims


async def verify_client_jwt(
    session: AsyncSession,
    assertion: str,
    audiences: set[str],
    *,
    expected_client_id: str | None = None,
    as_grant: bool = False,
) -> tuple[ClientRecord, dict[str, Any]]:
    """Verify a JWT a client signed with its registered key; remember its jti.

    Used for client assertions (RFC 7523 section 2.2) and, with `as_grant`, for JWT
    bearer grants (section 2.1), whose errors are `invalid_grant`.
    """
    fail = invalid_grant if as_grant else invalid_client
    header, unverified = _peek(assertion)
    if header.get("alg") not in CLIENT_JWT_ALGS:
        raise fail("The JWT must be signed with an asymmetric algorithm (RS256, ES256, ...)")
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or (expected_client_id not in (None, client_id)):
        raise fail("The JWT's iss must be the client_id")
    try:
        client = await clients.get_client(session, client_id)
    except UnknownClient:
        raise fail("Unknown client") from None
    if not client.jwks:
        raise fail("This client has no registered keys")
    try:
        token = jwt.decode(assertion, client.keyset, algorithms=list(CLIENT_JWT_ALGS))
    except (JoseError, ValueError) as exc:
        raise fail("The JWT's signature does not verify with the client's keys") from exc
    claims = dict(token.claims)
    registry = JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": client_id},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise fail(f"The JWT is not acceptable: {exc.description or exc.error}") from exc
    if not as_grant and claims.get("sub") != client_id:
        raise fail("The client assertion's sub must be the client_id")
    aud = claims.get("aud")
    aud_values = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if not aud_values & audiences:
        raise fail("The JWT's aud must be this issuer")
    now = datetime.now(UTC).timestamp()
    exp = float(claims["exp"])
    issued = float(claims.get("iat", now))
    if exp - min(issued, now) > MAX_JWT_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise fail(f"The JWT may live at most {MAX_JWT_LIFETIME_SECONDS} seconds")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise fail("The JWT's jti must be a unique string of 8 to 200 characters")
    if not await remember_jti(session, f"client:{client_id}", jti, exp):
        raise fail("This JWT has been used before (replay)")
    return client, claims


_SEEN = cast(Table, SeenJti.__table__)
_SEEN_VALUES = {
    "issuer": bindparam("b_issuer"),
    "jti": bindparam("b_jti"),
    "expires_at": bindparam("b_expires_at", type_=_SEEN.c.expires_at.type),
}
# Built once per dialect (a hot path: every client assertion and JWT bearer grant).
REMEMBER_JTI_PG = (
    postgresql_insert(_SEEN).values(_SEEN_VALUES).on_conflict_do_nothing().returning(_SEEN.c.jti)
)
REMEMBER_JTI_SQLITE = (
    sqlite_insert(_SEEN).values(_SEEN_VALUES).on_conflict_do_nothing().returning(_SEEN.c.jti)
)


async def remember_jti(session: AsyncSession, issuer: str, jti: str, exp: float) -> bool:
    """Record a jti until it expires; False when it was already recorded (a replay).

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` (PostgreSQL and SQLite alike), so
    a replay neither raises nor spoils the caller's transaction.
    """
    expires_at = datetime.fromtimestamp(exp + LEEWAY_SECONDS, UTC)
    dialect = dialect_name(session)
    statement = REMEMBER_JTI_PG if dialect == "postgresql" else REMEMBER_JTI_SQLITE
    params = {"b_issuer": issuer, "b_jti": jti, "b_expires_at": expires_at}
    if await fetch_value(session, statement, params) is None:
        return False
    if random.random() < 0.01:  # now and then, forget jtis that can no longer replay
        await session.execute(delete(SeenJti).where(SeenJti.expires_at < datetime.now(UTC)))
    return True
