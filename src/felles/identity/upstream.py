"""Brokered login: Felles logs people in through an upstream OpenID Connect provider.

Felles is a relying party towards the upstream provider (like BankID) and stays the
provider towards its own clients. This module is the domain logic, no HTTP handling of
our own (`upstream_pages.py` does that):

- the provider registry (`UpstreamProvider` rows): add, list, update, disable, enable.
  Every broken rule raises `ProviderError` naming the field at fault; the client secret
  is kept encrypted under the master key;
- the upstream's discovery document and keys, fetched with httpx and cached per process
  (`UpstreamCache`), with one refetch of the keys when a token names an unknown `kid`;
- the authorization request: PKCE S256, `state` and `nonce`, kept in `UpstreamLogin`;
- the callback: the state is claimed once, the code exchanged, the ID token verified
  (signature, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, an allow-list of algorithms
  without `none` or HS*) and the person's national identity number read from the
  provider's `pid_claim`.

Every failure of a login raises `UpstreamError` with a stable `reason`; its `detail` is
English for operators and never holds a token, a code or an identity number.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity import crypto, levels
from felles.identity.models import UpstreamLogin, UpstreamProvider
from felles.identity.service import Authenticated, s256
from felles.registry.numbers import InvalidNumber, parse_pid

METHOD = "upstream"
AMR_PREFIX = "upstream:"
CALLBACK_PATH = "/login/upstream/callback"
LOGIN_SECONDS = 10 * 60  # from the start link to the callback
CACHE_SECONDS = 300.0
HTTP_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 512 * 1024
MAX_ID_TOKEN_LENGTH = 16 * 1024
CLOCK_SKEW_SECONDS = 60
# Asymmetric algorithms only: never `none`, never HS* (a shared secret is no proof of
# who signed, and HS* with a public key as the secret is the classic confusion attack).
ID_TOKEN_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_EC_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?")
PID_CLAIM = re.compile(r"[A-Za-z0-9_.:-]{1,50}")
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,100}")  # RFC 6749 3.3
ERROR_CODE = re.compile(r"[a-z_]{1,40}")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_CLIENT_SECRET_LENGTH = 500

# The `acr` values an upstream may send, as our levels. Old ID-porten names and eIDAS
# URIs included; a value not listed here leaves the provider's configured level.
ACR_ALIASES = {
    levels.SUBSTANTIAL: levels.SUBSTANTIAL,
    levels.HIGH: levels.HIGH,
    "substantial": levels.SUBSTANTIAL,
    "high": levels.HIGH,
    "Level3": levels.SUBSTANTIAL,
    "Level4": levels.HIGH,
    "http://eidas.europa.eu/LoA/substantial": levels.SUBSTANTIAL,
    "http://eidas.europa.eu/LoA/high": levels.HIGH,
}
# Levels below anything Felles gives: such a login is refused, whatever is configured.
ACR_TOO_LOW = frozenset(
    {"idporten-loa-low", "low", "Level1", "Level2", "http://eidas.europa.eu/LoA/low"}
)


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- Errors ------------------------------------------------------------------------------


class ProviderError(ValueError):
    """A provider registration breaks a rule; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownProvider(LookupError):
    """No upstream provider with that name."""


class UpstreamError(Exception):
    """A login through an upstream provider failed.

    `reason` is stable (pages choose their message by it, the audit log records it);
    `detail` is for operators and never holds a token, a code or an identity number.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        pending_id: str | None = None,
        provider: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.pending_id = pending_id
        self.provider = provider
        self.extra = extra or {}


# --- The provider registry -----------------------------------------------------------------


class ProviderRecord(BaseModel):
    """An upstream provider as the rest of Felles sees it: everything but the secret."""

    model_config = ConfigDict(frozen=True)

    name: str
    display_name: str
    issuer: str
    client_id: str
    acr: str
    scope: str
    pid_claim: str
    enabled: bool
    has_client_secret: bool
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return aware(value)


class NewProvider(BaseModel):
    """What an operator registers. Only types are checked here; `add_provider` checks rules.

    `client_secret=None` registers a public client (PKCE only, no secret).
    """

    name: str
    issuer: str
    client_id: str
    acr: str
    client_secret: str | None = None
    display_name: str | None = None  # default: the name
    scope: str = "openid"
    pid_claim: str = "pid"


class ProviderUpdate(BaseModel):
    """A change to a provider; `None` leaves a field as it is, `client_secret=""` removes
    the secret."""

    display_name: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    acr: str | None = None
    scope: str | None = None
    pid_claim: str | None = None


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ProviderError(
            "The name must be 1-50 lowercase letters, digits and hyphens, starting and "
            "ending with a letter or digit (it appears in addresses).",
            field="name",
        )
    return name


def _check_text(value: str, *, field: str, label: str, max_length: int) -> str:
    text = value.strip()
    if not text:
        raise ProviderError(f"The {label} must not be empty.", field=field)
    if len(text) > max_length:
        raise ProviderError(f"The {label} must be at most {max_length} characters.", field=field)
    if _has_control(text):
        raise ProviderError(f"The {label} must not contain control characters.", field=field)
    return text


def check_url(url: str, *, field: str, label: str) -> str:
    """An absolute https URL, or http on the loopback interface; no user info, no fragment."""
    shown = repr(url[:80]) if isinstance(url, str) else "?"
    if not isinstance(url, str) or not url:
        raise ProviderError(f"The {label} must not be empty.", field=field)
    if len(url) > 500:
        raise ProviderError(f"The {label} {shown}... is longer than 500 characters.", field=field)
    if not url.isascii() or _has_control(url) or any(c.isspace() for c in url) or "\\" in url:
        raise ProviderError(
            f"The {label} {shown} must be plain ASCII without spaces or control characters.",
            field=field,
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ProviderError(f"The {label} {shown} is not a valid URL.", field=field) from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise ProviderError(f"The {label} {shown} must be an absolute https:// URL.", field=field)
    if "@" in parts.netloc:
        raise ProviderError(
            f"The {label} {shown} must not contain a user name or password.", field=field
        )
    if parts.fragment or "#" in url:
        raise ProviderError(f"The {label} {shown} must not have a fragment (#...).", field=field)
    if scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ProviderError(
            f"The {label} {shown} must use https; http is allowed only for "
            "127.0.0.1, [::1] and localhost.",
            field=field,
        )
    return url


def _check_issuer(issuer: str) -> str:
    check_url(issuer, field="issuer", label="issuer")
    if urlsplit(issuer).query:
        raise ProviderError("The issuer must not have a query (?...).", field="issuer")
    return issuer


def _check_client_id(client_id: str) -> str:
    text = _check_text(client_id, field="client_id", label="client id", max_length=200)
    if any(c.isspace() for c in text):
        raise ProviderError("The client id must not contain spaces.", field="client_id")
    return text


def _check_secret(secret: str) -> str:
    text = secret.strip()
    if not text:
        raise ProviderError("The client secret is empty.", field="client_secret")
    if len(text) > MAX_CLIENT_SECRET_LENGTH:
        raise ProviderError(
            f"The client secret must be at most {MAX_CLIENT_SECRET_LENGTH} characters.",
            field="client_secret",
        )
    if _has_control(text):
        raise ProviderError(
            "The client secret must be one line without control characters.",
            field="client_secret",
        )
    return text


def _check_acr(acr: str) -> str:
    if acr not in levels.LEVELS:
        raise ProviderError(f"The level must be one of {', '.join(levels.LEVELS)}.", field="acr")
    return acr


def _check_scope(scope: str) -> str:
    tokens = list(dict.fromkeys(scope.split()))
    if "openid" not in tokens:
        raise ProviderError("The scope must include openid.", field="scope")
    if any(SCOPE_TOKEN.fullmatch(t) is None for t in tokens):
        raise ProviderError(
            "The scope must be words of printable ASCII separated by spaces.", field="scope"
        )
    joined = " ".join(tokens)
    if len(joined) > 500:
        raise ProviderError("The scope must be at most 500 characters.", field="scope")
    return joined


def _check_pid_claim(claim: str) -> str:
    if PID_CLAIM.fullmatch(claim) is None:
        raise ProviderError(
            "The identity number claim must be 1-50 letters, digits, '_', '.', ':' or '-'.",
            field="pid_claim",
        )
    return claim


def _secret_context(name: str) -> bytes:
    return f"upstream-provider:{name}".encode()


def _encrypt_secret(master_key: bytes, name: str, secret: str) -> bytes:
    return crypto.encrypt(master_key, secret.encode(), _secret_context(name))


def _record(row: UpstreamProvider) -> ProviderRecord:
    return ProviderRecord(
        name=row.name,
        display_name=row.display_name,
        issuer=row.issuer,
        client_id=row.client_id,
        acr=row.acr,
        scope=row.scope,
        pid_claim=row.pid_claim,
        enabled=row.enabled,
        has_client_secret=row.client_secret is not None,
        created_at=row.created_at,
    )


async def _row(session: AsyncSession, name: str) -> UpstreamProvider:
    row = await session.get(UpstreamProvider, name) if isinstance(name, str) and name else None
    if row is None:
        raise UnknownProvider(f"There is no upstream provider named {name!r}.")
    return row


async def add_provider(
    session: AsyncSession, master_key: bytes, new: NewProvider
) -> ProviderRecord:
    """Register an upstream provider (enabled at once)."""
    name = _check_name(new.name)
    display_name = _check_text(
        new.display_name if new.display_name is not None else name,
        field="display_name",
        label="display name",
        max_length=100,
    )
    issuer = _check_issuer(new.issuer)
    client_id = _check_client_id(new.client_id)
    secret = _check_secret(new.client_secret) if new.client_secret is not None else None
    acr = _check_acr(new.acr)
    scope = _check_scope(new.scope)
    pid_claim = _check_pid_claim(new.pid_claim)
    if await session.get(UpstreamProvider, name) is not None:
        raise ProviderError(f"An upstream provider named {name!r} already exists.", field="name")
    row = UpstreamProvider(
        name=name,
        display_name=display_name,
        issuer=issuer,
        client_id=client_id,
        client_secret=_encrypt_secret(master_key, name, secret) if secret else None,
        acr=acr,
        scope=scope,
        pid_claim=pid_claim,
        enabled=True,
        created_at=now(),
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def get_provider(session: AsyncSession, name: str) -> ProviderRecord:
    return _record(await _row(session, name))


async def list_providers(
    session: AsyncSession, *, enabled_only: bool = False
) -> list[ProviderRecord]:
    """Every provider (or only the enabled ones), by display name."""
    query = select(UpstreamProvider).order_by(UpstreamProvider.display_name, UpstreamProvider.name)
    if enabled_only:
        query = query.where(UpstreamProvider.enabled.is_(True))
    return [_record(row) for row in await session.scalars(query)]


async def update_provider(
    session: AsyncSession, master_key: bytes, name: str, change: ProviderUpdate
) -> ProviderRecord:
    """Change a provider; only the fields given change."""
    row = await _row(session, name)
    if change.display_name is not None:
        row.display_name = _check_text(
            change.display_name, field="display_name", label="display name", max_length=100
        )
    if change.issuer is not None:
        row.issuer = _check_issuer(change.issuer)
    if change.client_id is not None:
        row.client_id = _check_client_id(change.client_id)
    if change.client_secret is not None:
        if change.client_secret == "":
            row.client_secret = None
        else:
            secret = _check_secret(change.client_secret)
            row.client_secret = _encrypt_secret(master_key, row.name, secret)
    if change.acr is not None:
        row.acr = _check_acr(change.acr)
    if change.scope is not None:
        row.scope = _check_scope(change.scope)
    if change.pid_claim is not None:
        row.pid_claim = _check_pid_claim(change.pid_claim)
    await session.flush()
    return _record(row)


async def _set_enabled(session: AsyncSession, name: str, enabled: bool) -> ProviderRecord:
    row = await _row(session, name)
    row.enabled = enabled
    await session.flush()
    return _record(row)


async def disable_provider(session: AsyncSession, name: str) -> ProviderRecord:
    """Stop offering a provider; logins already under way there are refused at the callback."""
    return await _set_enabled(session, name, False)


async def enable_provider(session: AsyncSession, name: str) -> ProviderRecord:
    return await _set_enabled(session, name, True)


async def find_provider(session: AsyncSession, name: str) -> ProviderRecord | None:
    """The provider of that name, enabled or not; None if there is none."""
    row = await session.get(UpstreamProvider, name) if name else None
    return _record(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """An enabled provider with its encrypted client secret, for the code exchange."""

    record: ProviderRecord
    encrypted_secret: bytes | None

    def client_secret(self, master_key: bytes) -> str | None:
        if self.encrypted_secret is None:
            return None
        context = _secret_context(self.record.name)
        try:
            return crypto.decrypt(master_key, self.encrypted_secret, context).decode()
        except (InvalidTag, ValueError):
            raise UpstreamError(
                "misconfigured", "the client secret does not decrypt with this master key"
            ) from None


async def provider_for_login(session: AsyncSession, name: str) -> ProviderConfig | None:
    """The provider if it exists and is enabled; None otherwise."""
    row = await session.get(UpstreamProvider, name)
    if row is None or not row.enabled:
        return None
    return ProviderConfig(_record(row), row.client_secret)


# --- Discovery and keys ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What we use of an upstream's discovery document (OpenID Connect Discovery 1.0)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    id_token_algs: tuple[str, ...]
    acr_values: tuple[str, ...]
    token_auth_methods: tuple[str, ...]
    iss_parameter: bool  # RFC 9207: the callback carries `iss`


def _endpoint(doc: dict[str, Any], name: str, issuer: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise UpstreamError("bad_discovery", f"the discovery document has no {name}")
    try:
        check_url(value, field=name, label=name)
    except ProviderError as exc:
        raise UpstreamError("bad_discovery", f"{name}: {exc.message}") from None
    if urlsplit(issuer).scheme == "https" and urlsplit(value).scheme != "https":
        raise UpstreamError("bad_discovery", f"{name} must use https like the issuer")
    return value


def _strings(doc: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UpstreamError("bad_discovery", f"{name} must be a list of strings")
    return tuple(value)


def parse_metadata(issuer: str, doc: Any) -> ProviderMetadata:
    """Check a discovery document against the issuer we were configured with."""
    if not isinstance(doc, dict):
        raise UpstreamError("bad_discovery", "the discovery document is not a JSON object")
    if doc.get("issuer") != issuer:
        # OpenID Connect Discovery 4.3: exactly the configured issuer, or nothing.
        raise UpstreamError(
            "bad_discovery", "the discovery document names another issuer than configured"
        )
    response_types = _strings(doc, "response_types_supported")
    if response_types is not None and "code" not in response_types:
        raise UpstreamError("bad_discovery", "the provider does not support the code flow")
    offered_algs = _strings(doc, "id_token_signing_alg_values_supported")
    algs = (
        ID_TOKEN_ALGS
        if offered_algs is None
        else tuple(a for a in offered_algs if a in ID_TOKEN_ALGS)
    )
    if not algs:
        raise UpstreamError(
            "bad_discovery", "the provider signs ID tokens with no algorithm we accept"
        )
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_endpoint(doc, "authorization_endpoint", issuer),
        token_endpoint=_endpoint(doc, "token_endpoint", issuer),
        jwks_uri=_endpoint(doc, "jwks_uri", issuer),
        id_token_algs=algs,
        acr_values=_strings(doc, "acr_values_supported") or (),
        token_auth_methods=_strings(doc, "token_endpoint_auth_methods_supported")
        or ("client_secret_basic",),
        iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
    )


UpstreamKey = RSAKey | ECKey


class UpstreamCache:
    """Discovery documents and key sets of upstream providers, kept for `ttl_seconds`.

    One per process (`CACHE`); a multi-process deployment fetches once per process,
    which the upstream's own caching headers make cheap.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = CACHE_SECONDS,
        timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self._metadata: dict[str, tuple[datetime, ProviderMetadata]] = {}
        self._keys: dict[str, tuple[datetime, list[UpstreamKey]]] = {}
        self.jwks_fetches = 0  # how often a key set was fetched (operators, tests)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout_seconds,
            follow_redirects=False,
            headers={"accept": "application/json"},
        )

    def forget(self) -> None:
        self._metadata.clear()
        self._keys.clear()

    def _fresh(self, at: datetime) -> bool:
        return (now() - at).total_seconds() < self.ttl_seconds

    async def fetch(
        self,
        method: str,
        url: str,
        what: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One request, at most MAX_RESPONSE_BYTES back; network failures become
        UpstreamError (`unreachable`), naming only the kind of failure."""
        try:
            async with (
                self.client() as client,
                client.stream(method, url, data=data, headers=headers) as response,
            ):
                return response.status_code, await read_limited(response)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "unreachable", f"the {what} could not be reached ({type(exc).__name__})"
            ) from None

    async def get_json(self, url: str, what: str) -> Any:
        status, body = await self.fetch("GET", url, what)
        if status != 200:
            raise UpstreamError("unreachable", f"the {what} answered HTTP {status}")
        try:
            return json.loads(body)
        except ValueError:
            raise UpstreamError("bad_discovery", f"the {what} is not JSON") from None

    async def metadata(self, issuer: str) -> ProviderMetadata:
        cached = self._metadata.get(issuer)
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self.get_json(url, "discovery document")
        value = parse_metadata(issuer, doc)
        self._metadata[issuer] = (now(), value)
        return value

    async def keys(self, jwks_uri: str, *, refresh: bool = False) -> list[UpstreamKey]:
        cached = self._keys.get(jwks_uri)
        if cached is not None and not refresh and self._fresh(cached[0]):
            return cached[1]
        self.jwks_fetches += 1
        doc = await self.get_json(jwks_uri, "key set")
        entries = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise UpstreamError("bad_discovery", "the key set has no keys")
        found: list[UpstreamKey] = []
        for entry in entries[:50]:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
                continue
            try:
                key = import_key(entry)
            except (JoseError, ValueError, TypeError):
                continue  # one odd key must not stop the others
            if isinstance(key, RSAKey | ECKey):
                found.append(key)
        self._keys[jwks_uri] = (now(), found)
        return found


async def read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamError("unreachable", "the answer is larger than we accept")
        chunks.append(chunk)
    return b"".join(chunks)


CACHE = UpstreamCache()


# --- The authorization request ------------------------------------------------------------


def callback_url(base_url: str) -> str:
    """Felles' redirect URI at every upstream provider: one for all, the state tells apart."""
    return base_url.rstrip("/") + CALLBACK_PATH


@dataclass(frozen=True, slots=True)
class LoginStart:
    url: str  # where to send the browser
    state: str


async def begin_login(
    session: AsyncSession,
    provider: ProviderRecord,
    metadata: ProviderMetadata,
    *,
    pending_id: str,
    redirect_uri: str,
    login_hint: str | None = None,
    ui_locales: list[str] | None = None,
) -> LoginStart:
    """Keep state, nonce and PKCE verifier for the callback; build the upstream's URL."""
    await session.execute(delete(UpstreamLogin).where(UpstreamLogin.expires_at < now()))
    state = crypto.random_token(32)
    nonce = crypto.random_token(32)
    verifier = crypto.random_token(48)  # 64 characters, within RFC 7636's 43-128
    session.add(
        UpstreamLogin(
            state=state,
            provider=provider.name,
            pending_id=pending_id,
            nonce=nonce,
            code_verifier=verifier,
            expires_at=now() + timedelta(seconds=LOGIN_SECONDS),
        )
    )
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": provider.scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    if provider.acr in metadata.acr_values:
        params["acr_values"] = provider.acr
    if ui_locales:
        params["ui_locales"] = " ".join(ui_locales)
    if login_hint:
        params["login_hint"] = login_hint
    endpoint = metadata.authorization_endpoint
    separator = "&" if urlsplit(endpoint).query else "?"
    return LoginStart(f"{endpoint}{separator}{urlencode(params)}", state)


def forwarded_login_hint(demo_allowed: bool, *candidates: str | None) -> str | None:
    """A TestID hint (`testid:<pid>_<level>`) passed on to the upstream, so tests and
    demos run headless; only where demo features are allowed, never anything else."""
    if not demo_allowed:
        return None
    for hint in candidates:
        if hint and hint.startswith("testid:") and len(hint) <= 100 and hint.isprintable():
            return hint
    return None


# --- The callback --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedLogin:
    """A login in progress, taken out of the table (a state works once)."""

    state: str
    provider: str
    pending_id: str
    nonce: str
    code_verifier: str
    expired: bool


async def claim_login(session: AsyncSession, state: str) -> ClaimedLogin:
    """Take the login that `state` names; UpstreamError if there is none (wrong or used)."""
    row = await session.get(UpstreamLogin, state) if state and len(state) <= 64 else None
    if row is None:
        raise UpstreamError("unknown_state", "no login in progress has this state")
    claimed = await session.execute(delete(UpstreamLogin).where(UpstreamLogin.state == state))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise UpstreamError("unknown_state", "the state was used at the same moment")
    return ClaimedLogin(
        state=row.state,
        provider=row.provider,
        pending_id=row.pending_id,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        expired=aware(row.expires_at) < now(),
    )


def callback_error(error: str, provider: str, pending_id: str) -> UpstreamError:
    """The upstream sent the person back with an error instead of a code."""
    code = error if ERROR_CODE.fullmatch(error) else "other"
    reason = "cancelled" if code in ("access_denied", "login_required") else "upstream_error"
    return UpstreamError(
        reason,
        f"the provider answered {code}",
        pending_id=pending_id,
        provider=provider,
        extra={"upstream_error": code},
    )


async def exchange_code(
    cache: UpstreamCache,
    config: ProviderConfig,
    metadata: ProviderMetadata,
    *,
    client_secret: str | None,
    code: str,
    code_verifier: str,
    redirect_uri: str,
) -> str:
    """The code for tokens at the upstream's token endpoint; returns the ID token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers: dict[str, str] = {}
    provider = config.record
    if client_secret is None:
        form["client_id"] = provider.client_id
    elif (
        "client_secret_basic" not in metadata.token_auth_methods
        and "client_secret_post" in metadata.token_auth_methods
    ):
        form["client_id"] = provider.client_id
        form["client_secret"] = client_secret
    else:
        # RFC 6749 2.3.1: both parts form-urlencoded before base64.
        user = urlencode({"u": provider.client_id})[2:]
        password = urlencode({"p": client_secret})[2:]
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["authorization"] = f"Basic {basic}"
    status, body = await cache.fetch(
        "POST", metadata.token_endpoint, "token endpoint", data=form, headers=headers
    )
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        code_name = error if isinstance(error, str) and ERROR_CODE.fullmatch(error) else "other"
        raise UpstreamError(
            "token_exchange_failed", f"the token endpoint answered HTTP {status} ({code_name})"
        )
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise UpstreamError("token_exchange_failed", "the token response has no ID token")
    return id_token


def _usable(key: UpstreamKey, alg: str) -> bool:
    wanted_type = _KEY_TYPE.get(alg[:2])
    if key.key_type != wanted_type:
        return False
    if key.get("use") not in (None, "sig") or key.get("alg") not in (None, alg):
        return False
    return not (isinstance(key, ECKey) and key.curve_name != _EC_CURVE.get(alg))


def _pick_key(keys: list[UpstreamKey], kid: str | None, alg: str) -> UpstreamKey | None:
    usable = [k for k in keys if _usable(k, alg)]
    if kid is not None:
        return next((k for k in usable if k.kid == kid), None)
    return usable[0] if len(usable) == 1 else None


def _bad_token(detail: str) -> UpstreamError:
    return UpstreamError("invalid_id_token", detail)


async def verify_id_token(
    cache: UpstreamCache,
    provider: ProviderRecord,
    metadata: ProviderMetadata,
    token: str,
    nonce: str,
) -> dict[str, Any]:
    """The claims of an upstream ID token, after every check OpenID Connect Core 3.1.3.7
    asks of a relying party; UpstreamError(`invalid_id_token`) otherwise."""
    if not isinstance(token, str) or len(token) > MAX_ID_TOKEN_LENGTH or token.count(".") != 2:
        raise _bad_token("the ID token is not a signed JWT")
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError):
        raise _bad_token("the ID token's header cannot be read") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in metadata.id_token_algs:
        shown = repr(alg)[:20]
        raise _bad_token(f"the ID token is signed with an algorithm we do not accept ({shown})")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _bad_token("the ID token's kid is not text")
    key = _pick_key(await cache.keys(metadata.jwks_uri), kid, alg)
    if key is None:  # the upstream may have rotated its keys: look once more
        key = _pick_key(await cache.keys(metadata.jwks_uri, refresh=True), kid, alg)
    if key is None:
        raise _bad_token("no key of the provider matches the ID token")
    try:
        claims = dict(jwt.decode(token, key, algorithms=[alg]).claims)
        JWTClaimsRegistry(
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        ).validate(claims)
    except JoseError as exc:
        raise _bad_token(f"the ID token is not valid ({exc.error})") from None
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or provider.client_id not in audiences:
        raise _bad_token("the ID token is meant for another client (aud)")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise _bad_token("the ID token has several audiences and no azp")
    if azp is not None and azp != provider.client_id:
        raise _bad_token("the ID token was issued to another client (azp)")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not crypto.constant_time_equal(token_nonce, nonce):
        raise _bad_token("the ID token's nonce is not the one we sent")
    return claims


def pid_from_claims(provider: ProviderRecord, claims: dict[str, Any]) -> str:
    """The person's national identity number from the provider's `pid_claim`."""
    try:
        return parse_pid(claims.get(provider.pid_claim)).value
    except InvalidNumber:
        raise UpstreamError(
            "invalid_pid",
            f"the claim {provider.pid_claim!r} is missing or not a national identity number",
        ) from None


def level_of(provider: ProviderRecord, claims: dict[str, Any]) -> str:
    """The level this login gives: the provider's configured level, or the upstream's
    `acr` when it is one of ours and not higher than configured. A level below ours
    refuses the login."""
    acr = claims.get("acr")
    if isinstance(acr, str):
        if acr in ACR_TOO_LOW:
            raise UpstreamError("level_too_low", f"the provider logged the person in at {acr}")
        mapped = ACR_ALIASES.get(acr)
        if mapped is not None and levels.rank(mapped) <= levels.rank(provider.acr):
            return mapped
    return provider.acr


async def finish_login(
    cache: UpstreamCache,
    config: ProviderConfig,
    login: ClaimedLogin,
    *,
    master_key: bytes,
    code: str,
    iss: str | None,
    redirect_uri: str,
) -> Authenticated:
    """From the upstream's code to who logged in (network calls; no database)."""
    provider = config.record
    client_secret = config.client_secret(master_key)
    metadata = await cache.metadata(provider.issuer)
    if iss is not None and iss != provider.issuer:
        # RFC 9207: the answer came from another provider than the one we asked (mix-up).
        raise UpstreamError("issuer_mismatch", "the callback's iss is not the provider's issuer")
    if iss is None and metadata.iss_parameter:
        raise UpstreamError("issuer_mismatch", "the callback has no iss, but the provider sends it")
    id_token = await exchange_code(
        cache,
        config,
        metadata,
        client_secret=client_secret,
        code=code,
        code_verifier=login.code_verifier,
        redirect_uri=redirect_uri,
    )
    claims = await verify_id_token(cache, provider, metadata, id_token, login.nonce)
    pid = pid_from_claims(provider, claims)
    acr = level_of(provider, claims)
    return Authenticated(pid=pid, acr=acr, amr=(AMR_PREFIX + provider.name,), method=METHOD)
