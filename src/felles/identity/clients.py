"""The client registry and API scopes of the login service: who may ask for tokens.

Two kinds of client, as in ID-porten and Maskinporten:

- a **people client** is a public service's web app; it sends people to log in
  (authorization code grant, PKCE always) and gets them back on a registered
  redirect URI;
- a **machine client** is an agency's server; it proves who it is with a JWT signed
  by its own key (RFC 7523) and gets access tokens for other agencies' APIs, on behalf
  of its organisation (`orgnr`).

API scopes follow Maskinporten: an agency owns a scope and grants it to consumer
organisations; a machine client gets a scope only when it is registered for it and
its organisation may use it.

All rules are checked here, in `add_client` and `update_client`, not in the pydantic
models: every broken rule raises `ClientError` naming the field at fault, so the CLI,
the pages and the API can all say which input to fix. No HTTP here.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import uuid
import warnings
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import SplitResult, urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import ColumnElement, Select, String, and_, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import dialect_name, fetch_values
from felles.identity.crypto import constant_time_equal, random_token, token_hash
from felles.identity.models import ApiScope, Client, ScopeGrant
from felles.registry.numbers import InvalidNumber, parse_orgnr

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_CODE = "authorization_code"
GRANT_REFRESH = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PEOPLE_GRANTS = (GRANT_CODE, GRANT_REFRESH)
MACHINE_GRANTS = (GRANT_JWT_BEARER, GRANT_CLIENT_CREDENTIALS)
GRANT_TYPES = PEOPLE_GRANTS + MACHINE_GRANTS
ID_TOKEN_ALGS = ("RS256", "ES256")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")  # urlsplit lower-cases hosts
SCOPE_NAME = re.compile(r"[a-z0-9][a-z0-9:._/-]{0,99}")
# Protocol scopes of OpenID Connect: never an agency's API scope.
RESERVED_SCOPES = frozenset({"openid"})
MAX_URI_LENGTH = 500  # the logout URI columns hold 500 characters
MAX_URIS = 50
MAX_SCOPES = 100
MAX_JWKS_KEYS = 20
MAX_JWKS_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
MAX_ACCESS_TOKEN_SECONDS = 3600
MAX_REFRESH_TOKEN_SECONDS = 365 * 24 * 3600
CLIENT_SECRET_BYTES = 32  # 256 bits
JWK_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
JWK_TYPES = ("RSA", "EC", "OKP")
# Compared against when the client is unknown, so a miss costs what a hit costs.
_NO_SECRET_HASH = token_hash("no client has this secret")


class ClientError(ValueError):
    """A client or scope registration breaks a rule; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownClient(LookupError):
    """No client with that id (or it is disabled and the caller wants only active ones)."""


class UnknownScope(LookupError):
    """No API scope with that name."""


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp Felles shows is UTC-aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ClientRecord(BaseModel):
    """A registered client as the rest of Felles sees it: everything but the secret."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    client_id: str
    name: str
    orgnr: str | None
    auth_method: str
    jwks: dict[str, Any] | None
    grant_types: list[str]
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    scopes: list[str]
    require_par: bool
    require_dpop: bool
    sector_identifier: str | None
    id_token_alg: str
    frontchannel_logout_uri: str | None
    backchannel_logout_uri: str | None
    access_token_seconds: int
    refresh_token_seconds: int
    disabled: bool
    created_at: datetime
    updated_at: datetime

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)

    @cached_property
    def keyset(self) -> KeySet:
        """The registered public keys, parsed once per (cached) record. Raises
        ValueError or JoseError if there are none or they do not parse."""
        if not self.jwks:
            raise ValueError("no registered keys")
        return KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]

    @property
    def is_machine(self) -> bool:
        """An agency's server: it only uses the machine grants (no person logs in)."""
        return bool(self.grant_types) and all(g in MACHINE_GRANTS for g in self.grant_types)

    @property
    def uses_secret(self) -> bool:
        """Authenticates with a client secret (Basic or in the form body)."""
        return self.auth_method in SECRET_METHODS


class NewClient(BaseModel):
    """What an operator registers. Only types are checked here; `add_client` checks rules.

    `grant_types=None` means: code + refresh for a people client, or jwt-bearer when an
    `orgnr` is given and there are no redirect URIs (an agency's server).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    scopes: list[str] = ["openid"]
    grant_types: list[str] | None = None
    orgnr: str | None = None
    require_par: bool = False
    require_dpop: bool = False
    id_token_alg: str = "RS256"  # noqa: S105 - an algorithm name, not a secret
    frontchannel_logout_uri: str | None = None
    backchannel_logout_uri: str | None = None
    access_token_seconds: int = 120
    refresh_token_seconds: int = 8 * 3600
    sector_identifier: str | None = None


class ClientUpdate(BaseModel):
    """A change to a client: None leaves a field as it is.

    For the optional text fields (`orgnr`, `sector_identifier`, the two logout URIs)
    an empty string removes the value. A list replaces the whole list.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    redirect_uris: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None
    auth_method: str | None = None
    jwks: dict[str, Any] | None = None
    scopes: list[str] | None = None
    grant_types: list[str] | None = None
    orgnr: str | None = None
    require_par: bool | None = None
    require_dpop: bool | None = None
    id_token_alg: str | None = None
    frontchannel_logout_uri: str | None = None
    backchannel_logout_uri: str | None = None
    access_token_seconds: int | None = None
    refresh_token_seconds: int | None = None
    sector_identifier: str | None = None


CLEARABLE = ("orgnr", "sector_identifier", "frontchannel_logout_uri", "backchannel_logout_uri")


class ScopeRecord(BaseModel):
    """An API scope an agency exposes, and who may ask for it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    name: str
    owner_orgnr: str
    description: str
    for_people: bool
    for_machines: bool
    public: bool


# --- validation -----------------------------------------------------------------------


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def _plain_text(value: str, *, field: str, label: str, max_length: int) -> str:
    text = value.strip()
    if not text:
        raise ClientError(f"The {label} must not be empty.", field=field)
    if len(text) > max_length:
        raise ClientError(f"The {label} must be at most {max_length} characters.", field=field)
    if _has_control(text):
        raise ClientError(f"The {label} must not contain control characters.", field=field)
    return text


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def _valid_host(host: str) -> bool:
    """A DNS name or IP address; nothing a browser and a parser could read differently."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return HOST_NAME.fullmatch(host) is not None


def _check_uri(uri: str, *, field: str, label: str) -> SplitResult:
    """An absolute https URL, or http on the loopback interface (OAuth 2.0 Security BCP).

    Exact strings only: no wildcards, no fragment, no user info (so
    `https://good.example@evil.example` cannot pass for good.example), ASCII only
    (internationalised hosts in punycode, so look-alike hosts stand out).
    """
    if not isinstance(uri, str) or not uri:
        raise ClientError(f"A {label} must not be empty.", field=field)
    shown = repr(uri[:80])
    if len(uri) > MAX_URI_LENGTH:
        raise ClientError(
            f"The {label} {shown}... is longer than {MAX_URI_LENGTH} characters.", field=field
        )
    if not uri.isascii() or _has_control(uri) or any(c.isspace() for c in uri):
        raise ClientError(
            f"The {label} {shown} must be plain ASCII without spaces or control characters "
            "(write international host names in punycode).",
            field=field,
        )
    if "*" in uri:
        raise ClientError(
            f"The {label} {shown} contains a wildcard; register each exact URI.", field=field
        )
    if "\\" in uri:
        raise ClientError(f"The {label} {shown} must not contain a backslash.", field=field)
    if "#" in uri:
        raise ClientError(f"The {label} {shown} must not have a fragment (#...).", field=field)
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ClientError(f"The {label} {shown} is not a valid URL.", field=field) from None
    scheme = parts.scheme.lower()
    if (
        scheme not in ("https", "http")
        or not parts.netloc
        or not uri.lower().startswith(scheme + "://")
    ):
        raise ClientError(f"The {label} {shown} must be an absolute https:// URL.", field=field)
    if "@" in parts.netloc:
        raise ClientError(
            f"The {label} {shown} must not contain a user name or password (the part before @).",
            field=field,
        )
    host = parts.hostname or ""
    if not _valid_host(host):
        raise ClientError(f"The {label} {shown} has no valid host name.", field=field)
    if scheme == "http" and not _is_loopback(host):
        raise ClientError(
            f"The {label} {shown} must use https; http is allowed only for "
            "127.0.0.1, [::1] and localhost.",
            field=field,
        )
    return parts


def _check_uris(uris: list[str], *, field: str, label: str) -> list[str]:
    unique = list(dict.fromkeys(uris))
    if len(unique) > MAX_URIS:
        raise ClientError(f"At most {MAX_URIS} {label}s can be registered.", field=field)
    for uri in unique:
        _check_uri(uri, field=field, label=label)
    return unique


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)


def _check_scope_name(name: str, *, field: str) -> str:
    if not isinstance(name, str) or not SCOPE_NAME.fullmatch(name):
        raise ClientError(
            f"The scope {str(name)[:100]!r} is not a valid scope name: use lower-case letters, "
            "digits and : . _ / - (at most 100 characters, starting with a letter or digit).",
            field=field,
        )
    return name


def _check_orgnr(raw: str, *, field: str) -> str:
    try:
        return parse_orgnr(raw)
    except InvalidNumber as exc:
        raise ClientError(f"{exc}.", field=field) from None


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK set of public signing keys (RSA of 2048 bits or more, EC, OKP).

    A private key in the set is refused outright: the private half must never leave
    the client's own server, and storing it here would let anyone who reads the
    database act as that client.
    """
    field = "jwks"
    shape = 'The JWKS must be a JWK set: {"keys": [ ...public keys... ]}.'
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ClientError(shape, field=field)
    keys: list[Any] = jwks["keys"]
    if not keys:
        raise ClientError("The JWKS has no keys; give at least one public key.", field=field)
    if len(keys) > MAX_JWKS_KEYS:
        raise ClientError(f"The JWKS has more than {MAX_JWKS_KEYS} keys.", field=field)
    try:
        size = len(json.dumps(jwks))
    except (TypeError, ValueError):
        raise ClientError("The JWKS must be plain JSON.", field=field) from None
    if size > MAX_JWKS_BYTES:
        raise ClientError(f"The JWKS is larger than {MAX_JWKS_BYTES // 1024} KiB.", field=field)
    for number, key in enumerate(keys, start=1):
        if not isinstance(key, dict):
            raise ClientError(shape, field=field)
        private = [m for m in JWK_PRIVATE_MEMBERS if m in key]
        if key.get("kty") == "oct":
            raise ClientError(
                f"Key {number} in the JWKS is a shared secret (kty oct); "
                "private_key_jwt needs public keys (RSA, EC or OKP).",
                field=field,
            )
        if private:
            raise ClientError(
                f"Key {number} in the JWKS is a private key (it has {private[0]!r}). "
                "Register only the public key; the private key must never leave your server "
                "(consider it exposed and make a new key pair).",
                field=field,
            )
        if key.get("kty") not in JWK_TYPES:
            raise ClientError(
                f"Key {number} in the JWKS has an unsupported key type "
                f"({str(key.get('kty'))[:20]!r}); use RSA, EC or OKP.",
                field=field,
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns about short RSA keys; we refuse them
            imported = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ClientError(f"The JWKS is not a valid JWK set ({reason}).", field=field) from None
    if len(imported.keys) != len(keys):
        raise ClientError("The JWKS holds keys that could not be read.", field=field)
    for number, imported_key in enumerate(imported.keys, start=1):
        if imported_key.is_private:
            raise ClientError(f"Key {number} in the JWKS is a private key.", field=field)
        if isinstance(imported_key, RSAKey) and imported_key.raw_value.key_size < MIN_RSA_BITS:
            raise ClientError(
                f"Key {number} in the JWKS is an RSA key of "
                f"{imported_key.raw_value.key_size} bits; at least {MIN_RSA_BITS} are required.",
                field=field,
            )
    return jwks


def _resolve_grants(new: NewClient) -> list[str]:
    if new.grant_types is not None:
        return list(dict.fromkeys(new.grant_types))
    if new.orgnr and not new.redirect_uris:
        return [GRANT_JWT_BEARER]
    return [GRANT_CODE, GRANT_REFRESH]


def _validated(new: NewClient) -> dict[str, Any]:
    """Check every rule; return the column values to store (normalised)."""
    values: dict[str, Any] = {
        "name": _plain_text(new.name, field="name", label="client name", max_length=200)
    }

    if new.auth_method not in AUTH_METHODS:
        raise ClientError(
            f"Unknown authentication method {new.auth_method[:40]!r}; "
            f"use one of {', '.join(AUTH_METHODS)}.",
            field="auth_method",
        )
    values["auth_method"] = new.auth_method

    values["orgnr"] = _check_orgnr(new.orgnr, field="orgnr") if new.orgnr else None

    grants = _resolve_grants(new)
    if not grants:
        raise ClientError("Give at least one grant type.", field="grant_types")
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise ClientError(
                f"Unknown grant type {grant[:80]!r}; use one of {', '.join(GRANT_TYPES)}.",
                field="grant_types",
            )
    machine = all(g in MACHINE_GRANTS for g in grants)
    if not machine and any(g in MACHINE_GRANTS for g in grants):
        raise ClientError(
            "A client is either for people (authorization_code, refresh_token) or for "
            "an agency's server (jwt-bearer, client_credentials), not both; "
            "register two clients.",
            field="grant_types",
        )
    values["grant_types"] = grants

    redirect_uris = _check_uris(new.redirect_uris, field="redirect_uris", label="redirect URI")
    values["redirect_uris"] = redirect_uris
    values["post_logout_redirect_uris"] = _check_uris(
        new.post_logout_redirect_uris,
        field="post_logout_redirect_uris",
        label="post-logout redirect URI",
    )
    for field, label in (
        ("frontchannel_logout_uri", "front-channel logout URI"),
        ("backchannel_logout_uri", "back-channel logout URI"),
    ):
        uri = getattr(new, field)
        values[field] = None
        if uri:
            _check_uri(uri, field=field, label=label)
            values[field] = uri

    if len(new.scopes) > MAX_SCOPES:
        raise ClientError(f"A client can have at most {MAX_SCOPES} scopes.", field="scopes")
    scopes = [_check_scope_name(s, field="scopes") for s in dict.fromkeys(new.scopes)]
    values["scopes"] = scopes

    values["jwks"] = check_jwks(new.jwks) if new.jwks is not None else None

    if machine:
        if not values["orgnr"]:
            raise ClientError(
                "A machine client acts for an organisation: give its organisation number.",
                field="orgnr",
            )
        uri_fields = (
            "redirect_uris",
            "post_logout_redirect_uris",
            "frontchannel_logout_uri",
            "backchannel_logout_uri",
        )
        for field in uri_fields:
            if values[field]:
                raise ClientError(
                    "A machine client has no people logging in, so no redirect or logout URIs.",
                    field=field,
                )
        if new.auth_method == "none":
            raise ClientError(
                "A machine client must authenticate; 'none' is only for people clients.",
                field="auth_method",
            )
        if GRANT_JWT_BEARER in grants and new.auth_method != "private_key_jwt":
            raise ClientError(
                "A machine client with the jwt-bearer grant must use private_key_jwt "
                "and register its public keys (jwks).",
                field="auth_method",
            )
    else:
        if GRANT_REFRESH in grants and GRANT_CODE not in grants:
            raise ClientError(
                "The refresh_token grant needs the authorization_code grant.",
                field="grant_types",
            )
        if not redirect_uris:
            raise ClientError(
                "A client for people needs at least one redirect URI.", field="redirect_uris"
            )
        if "openid" not in scopes:
            raise ClientError("A client for people must have the 'openid' scope.", field="scopes")
        front = values["frontchannel_logout_uri"]
        if front:
            # OpenID Connect Front-Channel Logout 1.0, section 2.
            origins = {_origin(urlsplit(u)) for u in redirect_uris}
            if _origin(urlsplit(front)) not in origins:
                raise ClientError(
                    "The front-channel logout URI must have the same scheme, host and port "
                    "as one of the redirect URIs.",
                    field="frontchannel_logout_uri",
                )

    if new.auth_method == "private_key_jwt" and values["jwks"] is None:
        raise ClientError(
            "private_key_jwt needs the client's public keys: give a JWK set (jwks).",
            field="jwks",
        )

    if new.id_token_alg not in ID_TOKEN_ALGS:
        raise ClientError(
            f"The ID token algorithm must be one of {', '.join(ID_TOKEN_ALGS)}.",
            field="id_token_alg",
        )
    values["id_token_alg"] = new.id_token_alg

    if not 1 <= new.access_token_seconds <= MAX_ACCESS_TOKEN_SECONDS:
        raise ClientError(
            f"Access tokens must live between 1 and {MAX_ACCESS_TOKEN_SECONDS} seconds.",
            field="access_token_seconds",
        )
    values["access_token_seconds"] = new.access_token_seconds
    if not 1 <= new.refresh_token_seconds <= MAX_REFRESH_TOKEN_SECONDS:
        raise ClientError(
            f"Refresh tokens must live between 1 and {MAX_REFRESH_TOKEN_SECONDS} seconds "
            "(one year).",
            field="refresh_token_seconds",
        )
    values["refresh_token_seconds"] = new.refresh_token_seconds

    values["sector_identifier"] = None
    if new.sector_identifier:
        sector = _plain_text(
            new.sector_identifier,
            field="sector_identifier",
            label="sector identifier",
            max_length=255,
        )
        if any(c.isspace() for c in sector) or not sector.isascii():
            raise ClientError(
                "The sector identifier must be ASCII without spaces.", field="sector_identifier"
            )
        values["sector_identifier"] = sector
    elif values.get("redirect_uris"):
        # Fixed at registration: the pairwise `sub` people get must not change when an
        # operator later edits the redirect URIs.
        values["sector_identifier"] = urlsplit(values["redirect_uris"][0]).hostname

    values["require_par"] = new.require_par
    values["require_dpop"] = new.require_dpop
    return values


# --- clients ----------------------------------------------------------------------------


def _plausible_id(client_id: str) -> bool:
    """Ids from the outside are looked up only when they could be ours.

    PostgreSQL refuses NUL characters outright; this keeps a hostile client_id a plain
    "unknown client" instead of a database error.
    """
    return isinstance(client_id, str) and 0 < len(client_id) <= 64 and client_id.isprintable()


async def _row(session: AsyncSession, client_id: str) -> Client:
    """The client's row, for changing it (so this process forgets its cached copy)."""
    forget(client_id)
    row = await session.get(Client, client_id) if _plausible_id(client_id) else None
    if row is None:
        raise UnknownClient(f"No client with id {client_id[:64]!r}.")
    return row


def _new_secret() -> tuple[str, str]:
    secret = random_token(CLIENT_SECRET_BYTES)
    return secret, token_hash(secret)


async def add_client(session: AsyncSession, new: NewClient) -> tuple[ClientRecord, str | None]:
    """Register a client; return it and, for the secret methods, its secret (shown once).

    The id is generated (a UUID, as Digdir's self-service hands out): callers never
    choose it, so nobody can take over or guess a well-known id.

    The secret is 256 random bits stored as SHA-256 (`token_hash`), not argon2: a
    slow hash protects guessable passwords, and would cost ~50 ms of CPU on every
    token request without making a 256-bit secret any harder to find.
    """
    values = _validated(new)
    secret: str | None = None
    secret_hash: str | None = None
    if values["auth_method"] in SECRET_METHODS:
        secret, secret_hash = _new_secret()
    now = datetime.now(UTC)
    row = Client(
        client_id=str(uuid.uuid4()),
        secret_hash=secret_hash,
        disabled=False,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(row)
    await session.flush()
    return ClientRecord.model_validate(row), secret


# Clients are read on every protocol request and change rarely: each process keeps them
# for a few seconds. A change made in this process is seen at once; one made elsewhere
# (another worker, the CLI) within CACHE_SECONDS.
CACHE_SECONDS = 5.0
_cache: dict[tuple[int, str], tuple[float, ClientRecord, str | None]] = {}


def _cache_key(session: AsyncSession, client_id: str) -> tuple[int, str]:
    return id(session.sync_session.get_bind()), client_id


async def _lookup(session: AsyncSession, client_id: str) -> tuple[ClientRecord, str | None] | None:
    """The client and its secret hash, from the cache or the database."""
    if not _plausible_id(client_id):
        return None
    key = _cache_key(session, client_id)
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1], hit[2]
    row = await session.get(Client, client_id)
    if row is None:
        _cache.pop(key, None)
        return None
    record = ClientRecord.model_validate(row)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (time.monotonic() + CACHE_SECONDS, record, row.secret_hash)
    return record, row.secret_hash


def forget(client_id: str) -> None:
    """Drop a changed client from this process's cache."""
    for key in [k for k in _cache if k[1] == client_id]:
        _cache.pop(key, None)


async def get_client(
    session: AsyncSession, client_id: str, *, include_disabled: bool = False
) -> ClientRecord:
    """The client with that id; a disabled one counts as unknown unless asked for."""
    found = await _lookup(session, client_id)
    if found is None:
        raise UnknownClient(f"No client with id {client_id[:64]!r}.")
    record = found[0]
    if record.disabled and not include_disabled:
        raise UnknownClient(f"The client {client_id!r} is disabled.")
    return record


async def list_clients(
    session: AsyncSession, *, include_disabled: bool = True
) -> list[ClientRecord]:
    """Every client, by name (operators see the disabled ones too by default)."""
    query = select(Client).order_by(Client.name, Client.client_id)
    if not include_disabled:
        query = query.where(Client.disabled.is_(False))
    rows = (await session.scalars(query)).all()
    return [ClientRecord.model_validate(row) for row in rows]


async def update_client(
    session: AsyncSession, client_id: str, change: ClientUpdate
) -> ClientRecord:
    """Change a client; the result must pass every rule `add_client` checks.

    Moving away from a secret method forgets the secret (it must not keep working);
    moving to one leaves the client without a secret until `new_secret` is called.
    """
    row = await _row(session, client_id)
    current = ClientRecord.model_validate(row)
    merged = current.model_dump(include=set(NewClient.model_fields))
    for field, value in change.model_dump(exclude_none=True).items():
        merged[field] = None if field in CLEARABLE and value == "" else value
    values = _validated(NewClient.model_validate(merged))
    for field, value in values.items():
        setattr(row, field, value)
    if values["auth_method"] not in SECRET_METHODS:
        row.secret_hash = None
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return ClientRecord.model_validate(row)


async def _set_disabled(session: AsyncSession, client_id: str, disabled: bool) -> ClientRecord:
    row = await _row(session, client_id)
    if row.disabled != disabled:
        row.disabled = disabled
        row.updated_at = datetime.now(UTC)
        await session.flush()
    return ClientRecord.model_validate(row)


async def disable_client(session: AsyncSession, client_id: str) -> ClientRecord:
    """Stop a client at once: no logins, no tokens, its secret stops working."""
    return await _set_disabled(session, client_id, True)


async def enable_client(session: AsyncSession, client_id: str) -> ClientRecord:
    """Let a disabled client work again, with the same id, secret and keys."""
    return await _set_disabled(session, client_id, False)


async def new_secret(session: AsyncSession, client_id: str) -> str:
    """Replace the client's secret with a new one and return it (shown once).

    The old secret stops working immediately; there is no overlap.
    """
    row = await _row(session, client_id)
    if row.auth_method not in SECRET_METHODS:
        raise ClientError(
            f"This client authenticates with {row.auth_method}, not a client secret.",
            field="auth_method",
        )
    secret, row.secret_hash = _new_secret()
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return secret


async def verify_secret(session: AsyncSession, client_id: str, secret: str) -> ClientRecord | None:
    """The client if the secret is right and the client is active, otherwise None.

    Compares hashes in constant time. It does not check which secret method was used
    (Basic or post): the caller compares that with `auth_method`.
    """
    found = await _lookup(session, client_id)
    expected = _NO_SECRET_HASH
    if found is not None and not found[0].disabled and found[0].auth_method in SECRET_METHODS:
        expected = found[1] or _NO_SECRET_HASH
    given = token_hash(secret) if isinstance(secret, str) else ""
    matches = constant_time_equal(given, expected)  # compared even for unknown clients
    if found is None or expected is _NO_SECRET_HASH or not matches:
        return None
    return found[0]


# --- scopes -----------------------------------------------------------------------------


async def _scope_row(session: AsyncSession, name: str) -> ApiScope:
    row = await session.get(ApiScope, name) if SCOPE_NAME.fullmatch(name) else None
    if row is None:
        raise UnknownScope(f"No scope named {name[:100]!r}.")
    return row


async def add_scope(
    session: AsyncSession,
    name: str,
    *,
    owner_orgnr: str,
    description: str = "",
    for_people: bool = False,
    for_machines: bool = True,
    public: bool = False,
) -> ScopeRecord:
    """An agency (the owner) exposes a scope for its API."""
    _check_scope_name(name, field="name")
    if name in RESERVED_SCOPES:
        raise ClientError(
            f"{name!r} is a scope of OpenID Connect itself, not an API scope.", field="name"
        )
    owner = _check_orgnr(owner_orgnr, field="owner_orgnr")
    text = description.strip()
    if len(text) > 500 or _has_control(text.replace("\n", " ")):
        raise ClientError(
            "The description must be at most 500 characters, without control characters.",
            field="description",
        )
    if not (for_people or for_machines):
        raise ClientError(
            "A scope must be usable by people clients, machine clients or both.",
            field="for_machines",
        )
    if await session.get(ApiScope, name) is not None:
        raise ClientError(f"The scope {name!r} already exists.", field="name")
    row = ApiScope(
        name=name,
        owner_orgnr=owner,
        description=text,
        for_people=for_people,
        for_machines=for_machines,
        public=public,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return ScopeRecord.model_validate(row)


async def list_scopes(session: AsyncSession) -> list[ScopeRecord]:
    rows = (await session.scalars(select(ApiScope).order_by(ApiScope.name))).all()
    return [ScopeRecord.model_validate(row) for row in rows]


async def grant_scope(session: AsyncSession, name: str, consumer_orgnr: str) -> None:
    """Let an organisation's machine clients use the scope (again is fine: idempotent)."""
    await _scope_row(session, name)
    consumer = _check_orgnr(consumer_orgnr, field="consumer_orgnr")
    if await session.get(ScopeGrant, (name, consumer)) is None:
        session.add(ScopeGrant(scope=name, consumer_orgnr=consumer, granted_at=datetime.now(UTC)))
        await session.flush()


async def revoke_scope(session: AsyncSession, name: str, consumer_orgnr: str) -> None:
    """Take the scope back from an organisation; nothing happens if it had no grant.

    Tokens already issued stay valid until they expire (at most an hour).
    """
    await _scope_row(session, name)
    consumer = _check_orgnr(consumer_orgnr, field="consumer_orgnr")
    row = await session.get(ScopeGrant, (name, consumer))
    if row is not None:
        await session.delete(row)
        await session.flush()


async def grants(session: AsyncSession, name: str) -> list[str]:
    """The organisations the scope has been granted to."""
    await _scope_row(session, name)
    query = (
        select(ScopeGrant.consumer_orgnr)
        .where(ScopeGrant.scope == name)
        .order_by(ScopeGrant.consumer_orgnr)
    )
    return list((await session.scalars(query)).all())


def _scopes_allowed(named: ColumnElement[bool]) -> Select[Any]:
    """The scopes `named` selects that the organisation `orgnr` may get as a machine."""
    return (
        select(ApiScope.name)
        .outerjoin(
            ScopeGrant,
            and_(
                ScopeGrant.scope == ApiScope.name,
                ScopeGrant.consumer_orgnr == bindparam("orgnr"),
            ),
        )
        .where(
            named,
            ApiScope.for_machines.is_(True),
            or_(
                ApiScope.public.is_(True),
                ApiScope.owner_orgnr == bindparam("orgnr"),
                ScopeGrant.consumer_orgnr.is_not(None),
            ),
        )
    )


# Built once (a hot path: every machine token). PostgreSQL takes the names as one array
# (a statement fixed in advance, so it can run straight on the driver); SQLite as a list.
MACHINE_SCOPES_ALLOWED_PG = _scopes_allowed(
    ApiScope.name == any_(bindparam("names", type_=ARRAY(String)))
)
MACHINE_SCOPES_ALLOWED = _scopes_allowed(ApiScope.name.in_(bindparam("names", expanding=True)))


async def machine_scopes_allowed(
    session: AsyncSession, client: ClientRecord, requested: set[str]
) -> set[str]:
    """The part of `requested` this machine client may get right now.

    A scope is allowed when the client is registered for it, the scope is for machines,
    and the client's organisation owns it, has a grant for it, or the scope is public.
    Checked on every token request, so a revoked grant takes effect at once.
    """
    if client.disabled or not client.is_machine or not client.orgnr:
        return set()
    wanted = {s for s in requested if isinstance(s, str) and SCOPE_NAME.fullmatch(s)}
    wanted &= set(client.scopes)
    if not wanted:
        return set()
    params = {"names": sorted(wanted), "orgnr": client.orgnr}
    pg = dialect_name(session) == "postgresql"
    statement = MACHINE_SCOPES_ALLOWED_PG if pg else MACHINE_SCOPES_ALLOWED
    return set(await fetch_values(session, statement, params))
