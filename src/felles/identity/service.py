"""The login service's domain logic: authorization requests, SSO sessions, codes, tokens.

No HTTP here: `api.py` and `pages.py` turn requests into calls of these functions
and their results (or OAuthError / AuthorizeError) into responses.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode, urlparse

from sqlalchemy import String, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import (
    NewRow,
    Write,
    dialect_name,
    fetch_row,
    fetch_value,
    insert_row,
    row_insert,
    write_together,
)
from felles.identity import clients, levels
from felles.identity.client_auth import verify_client_jwt
from felles.identity.clients import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_CODE,
    GRANT_JWT_BEARER,
    GRANT_REFRESH,
    ClientRecord,
    UnknownClient,
)
from felles.identity.crypto import pairwise_subject, random_token, token_hash
from felles.identity.errors import OAuthError, invalid_grant, invalid_request
from felles.identity.models import (
    AuditEvent,
    AuthorizationCode,
    PendingAuthorization,
    RefreshToken,
    RevokedToken,
    SessionClient,
    SsoSession,
)
from felles.identity.sealed import Sealer
from felles.identity.tokens import InvalidToken, TokenIssuer
from felles.registry import service as registry
from felles.registry.numbers import InvalidNumber, parse_pid

PAR_URN = "urn:ietf:params:oauth:request_uri:"
PAR_SECONDS = 90
# A sealed request_uri longer than this (a request with very long state, nonce or hints)
# is stored instead: the authorization URL carrying it must fit through proxies.
MAX_SEALED_LENGTH = 2048
PENDING_SECONDS = 30 * 60  # a person may take their time on the login pages
CODE_SECONDS = 60
UI_LOCALES = ("nb", "nn", "en")
PROMPTS = {"none", "login", "consent", "select_account"}
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_PARAM_LENGTH = 2000

# Hot-path statements, built once, in Core on the tables: executed on the session's
# connection they skip the ORM's bulk-update and compile machinery.
_PENDING = cast(Table, PendingAuthorization.__table__)
_REVOKED = cast(Table, RevokedToken.__table__)
_CODES = cast(Table, AuthorizationCode.__table__)
CLAIM_PUSHED = (
    update(_PENDING)
    .where(
        _PENDING.c.id == bindparam("pending_id"),
        _PENDING.c.pushed.is_(True),
        _PENDING.c.client_id == bindparam("b_client_id"),
        _PENDING.c.used_at.is_(None),
        _PENDING.c.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("at"))
    .returning(_PENDING.c.params)
)
IS_REVOKED = (
    select(_REVOKED.c.jti)
    .where(_REVOKED.c.jti.in_([bindparam("jti"), bindparam("family")]))
    .limit(1)
)
# userinfo with the profile scope: the revocation check, the person and the register's
# access row in one statement (PostgreSQL).
PROFILE_UNLESS_REVOKED = registry.GuardedLookup(IS_REVOKED)
CLAIM_CODE = (
    update(_CODES)
    .where(
        _CODES.c.code_hash == bindparam("b_code_hash"),
        _CODES.c.client_id == bindparam("b_client_id"),
        _CODES.c.used_at.is_(None),
        _CODES.c.expires_at > bindparam("now"),
        _CODES.c.redirect_uri == bindparam("b_redirect_uri"),
        _CODES.c.code_challenge == bindparam("challenge"),
        or_(_CODES.c.dpop_jkt.is_(None), _CODES.c.dpop_jkt == bindparam("jkt")),
    )
    .values(used_at=bindparam("at"), family_id=bindparam("family"))
    .returning(*_CODES.c)
)

# PostgreSQL: the code claimed and its refresh token written by one statement, so the
# exchange is all or nothing in one round trip (SQLite runs the two in a transaction).
_CLAIMED = CLAIM_CODE.cte("claimed")
CLAIM_CODE_WITH_REFRESH = select(_CLAIMED).add_cte(
    insert(cast(Table, RefreshToken.__table__))
    .from_select(
        [
            "token_hash",
            "family_id",
            "client_id",
            "session_id",
            "pid",
            "sub",
            "scope",
            "acr",
            "amr",
            "auth_time",
            "dpop_jkt",
            "issued_at",
            "expires_at",
        ],
        select(
            bindparam("r_hash"),
            bindparam("family"),
            _CLAIMED.c.client_id,
            _CLAIMED.c.session_id,
            _CLAIMED.c.pid,
            _CLAIMED.c.sub,
            _CLAIMED.c.scope,
            _CLAIMED.c.acr,
            _CLAIMED.c.amr,
            _CLAIMED.c.auth_time,
            func.coalesce(bindparam("bound_jkt", type_=String), _CLAIMED.c.dpop_jkt),
            bindparam("at"),
            bindparam("r_expires"),
        ),
    )
    .cte("refresh")
)


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class AuthorizeError(Exception):
    """An authorization request so broken that we must not redirect back (unknown
    client, bad redirect URI): the person sees an error page instead."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class RedirectError(Exception):
    """An error the client must hear about at its redirect URI."""

    def __init__(self, request: AuthorizationRequest, error: str, description: str) -> None:
        super().__init__(description)
        self.url = request.error_url(error, description)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """What a login method proved: who, at which level, by which means."""

    pid: str
    acr: str
    amr: tuple[str, ...]
    method: str


@dataclass(slots=True)
class AuthorizationRequest:
    """A validated authorization request (from the query, a form post, or PAR)."""

    client: ClientRecord
    issuer: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    acr_values: list[str] = field(default_factory=list)
    prompt: set[str] = field(default_factory=set)
    max_age: int | None = None
    ui_locales: list[str] = field(default_factory=list)
    login_hint: str | None = None
    dpop_jkt: str | None = None
    # A sealed pushed request: its id and expiry, recorded as used by the login's writes.
    pushed_id: str | None = None
    pushed_until: datetime | None = None

    def params(self) -> dict[str, Any]:
        """What to store while the person logs in (JSON-safe)."""
        return {
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "acr_values": self.acr_values,
            "prompt": sorted(self.prompt),
            "max_age": self.max_age,
            "ui_locales": self.ui_locales,
            "login_hint": self.login_hint,
            "dpop_jkt": self.dpop_jkt,
        }

    @classmethod
    def from_params(
        cls, client: ClientRecord, issuer: str, p: dict[str, Any]
    ) -> AuthorizationRequest:
        return cls(
            client=client,
            issuer=issuer,
            redirect_uri=p["redirect_uri"],
            scope=list(p["scope"]),
            state=p.get("state"),
            nonce=p.get("nonce"),
            code_challenge=p["code_challenge"],
            acr_values=list(p.get("acr_values") or []),
            prompt=set(p.get("prompt") or []),
            max_age=p.get("max_age"),
            ui_locales=list(p.get("ui_locales") or []),
            login_hint=p.get("login_hint"),
            dpop_jkt=p.get("dpop_jkt"),
        )

    @property
    def locale(self) -> str:
        return next((loc for loc in self.ui_locales if loc in UI_LOCALES), "nb")

    @property
    def wanted_acr(self) -> str:
        return levels.lowest(self.acr_values)

    def _redirect(self, values: dict[str, str | None]) -> str:
        query = {k: v for k, v in values.items() if v is not None}
        query["iss"] = self.issuer  # RFC 9207: the client can check who answered
        separator = "&" if urlparse(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(query)}"

    def success_url(self, code: str) -> str:
        return self._redirect({"code": code, "state": self.state})

    def error_url(self, error: str, description: str) -> str:
        return self._redirect(
            {"error": error, "error_description": description, "state": self.state}
        )


@dataclass(frozen=True, slots=True)
class SsoState:
    """The part of an SSO session the authorization logic needs."""

    id: str
    pid: str
    acr: str
    amr: tuple[str, ...]
    auth_time: datetime
    locale: str


@dataclass(frozen=True, slots=True)
class LoginDone:
    """A finished login: where to send the browser and the SSO cookie to set (if new)."""

    redirect_url: str
    sso_cookie: str | None


@dataclass(frozen=True, slots=True)
class NeedsLogin:
    """The person must log in (or step up): the pending request's id for the pages."""

    pending_id: str
    wanted_acr: str
    login_hint: str | None
    locale: str


@dataclass(frozen=True, slots=True)
class LogoutResult:
    frontchannel_urls: list[str]
    backchannel: list[tuple[str, str]]  # (logout URI, logout token)
    redirect_url: str | None


class Identity:
    """The login service for one issuer: holds the keys, token signer and settings."""

    def __init__(
        self, settings: Settings, tokens: TokenIssuer, pairwise_salt: bytes, sealer: Sealer
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.sealer = sealer
        self.issuer = settings.issuer
        self.pairwise_salt = pairwise_salt
        self.token_endpoint = f"{self.issuer}/token"
        self.par_endpoint = f"{self.issuer}/par"
        self.audiences = {self.issuer, self.token_endpoint, self.par_endpoint}

    # --- Subjects --------------------------------------------------------------------

    def subject(self, client: ClientRecord, pid: str) -> str:
        """Pairwise `sub`: clients of one sector see the same value, others another."""
        sector = client.sector_identifier or (
            urlparse(client.redirect_uris[0]).hostname if client.redirect_uris else None
        )
        return pairwise_subject(self.pairwise_salt, sector or client.client_id, pid)

    # --- Authorization requests ------------------------------------------------------

    async def _client_for_authorize(self, session: AsyncSession, client_id: Any) -> ClientRecord:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            raise AuthorizeError("invalid_request", "The request has no valid client_id.")
        try:
            client = await clients.get_client(session, client_id)
        except UnknownClient:
            raise AuthorizeError("invalid_client", "The service is not registered.") from None
        if GRANT_CODE not in client.grant_types:
            raise AuthorizeError("unauthorized_client", "The service cannot log people in.")
        return client

    def validate(
        self, client: ClientRecord, raw: dict[str, Any], *, pushed: bool = False
    ) -> AuthorizationRequest:
        """Check an authorization request's parameters, in the order the spec implies:
        first what decides whether we may redirect at all, then everything else."""
        redirect_uri = raw.get("redirect_uri")
        if not isinstance(redirect_uri, str) or redirect_uri not in client.redirect_uris:
            # Exact string match only: no prefixes, no wildcards, no normalisation.
            if pushed:
                raise invalid_request("redirect_uri is not registered for this client")
            raise AuthorizeError(
                "invalid_request", "The address to return to is not registered for this service."
            )
        raw_state = raw.get("state")
        partial = AuthorizationRequest(
            client=client,
            issuer=self.issuer,
            redirect_uri=redirect_uri,
            scope=[],
            state=raw_state
            if isinstance(raw_state, str) and 0 < len(raw_state) <= MAX_PARAM_LENGTH
            else None,
            nonce=None,
            code_challenge="",
        )

        def _fail(description: str, error: str = "invalid_request") -> Exception:
            if pushed:
                return OAuthError(error, description)
            return RedirectError(partial, error, description)

        def text(name: str) -> str | None:
            value = raw.get(name)
            if value is None or value == "":
                return None
            if not isinstance(value, str) or len(value) > MAX_PARAM_LENGTH:
                raise _fail(f"{name} is too long or not text")
            return value

        text("state")
        if text("request") is not None:
            raise _fail("Request objects are not supported", "request_not_supported")
        if text("response_type") != "code":
            raise _fail("response_type must be code", "unsupported_response_type")
        response_mode = text("response_mode")
        if response_mode not in (None, "query"):
            raise _fail("Only response_mode=query is supported")
        scope = (text("scope") or "").split()
        if "openid" not in scope:
            raise _fail("scope must include openid", "invalid_scope")
        unknown = [s for s in scope if s not in client.scopes]
        if unknown:
            raise _fail(f"scope not allowed for this client: {' '.join(unknown)}", "invalid_scope")
        method = text("code_challenge_method")
        challenge = text("code_challenge")
        if challenge is None:
            raise _fail("PKCE is required: send code_challenge with S256")
        if method != "S256":
            raise _fail("code_challenge_method must be S256 (plain is not allowed)")
        if not PKCE_CHALLENGE.match(challenge):
            raise _fail("code_challenge must be the base64url SHA-256 of the verifier")
        acr_values = (text("acr_values") or "").split()
        if any(a not in levels.LEVELS for a in acr_values):
            raise _fail(f"acr_values must be among {' '.join(levels.LEVELS)}")
        prompt = set((text("prompt") or "").split())
        if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
            raise _fail("prompt must be none, login, consent or select_account")
        max_age_raw = text("max_age")
        max_age: int | None = None
        if max_age_raw is not None:
            if not max_age_raw.isdigit() or len(max_age_raw) > 9:
                raise _fail("max_age must be a whole number of seconds")
            max_age = int(max_age_raw)
        partial.scope = scope
        partial.nonce = text("nonce")
        partial.code_challenge = challenge
        partial.acr_values = acr_values
        partial.prompt = prompt
        partial.max_age = max_age
        partial.ui_locales = (text("ui_locales") or "").split()
        partial.login_hint = text("login_hint")
        partial.dpop_jkt = text("dpop_jkt")
        return partial

    async def push(
        self, session: AsyncSession, client: ClientRecord, raw: dict[str, Any]
    ) -> tuple[str, int]:
        """PAR (RFC 9126): validate and keep the request; the client gets a request_uri."""
        if "request_uri" in raw:
            raise invalid_request("request_uri cannot be pushed")
        if raw.get("client_id") not in (None, client.client_id):
            raise invalid_request("client_id does not match the authenticated client")
        request = self.validate(client, raw, pushed=True)
        current = now()
        expires = current + timedelta(seconds=PAR_SECONDS)
        sealed = self.sealer.seal(
            {
                "c": client.client_id,
                "x": int(expires.timestamp()),
                "i": random_token(16),
                "p": request.params(),
            },
            current.timestamp(),
        )
        if len(sealed) <= MAX_SEALED_LENGTH:
            return PAR_URN + sealed, PAR_SECONDS
        pending_id = random_token(32)
        await insert_row(
            session,
            PendingAuthorization,
            id=pending_id,
            client_id=client.client_id,
            params=request.params(),
            pushed=True,
            expires_at=expires,
        )
        return PAR_URN + pending_id, PAR_SECONDS

    async def begin(self, session: AsyncSession, raw: dict[str, Any]) -> AuthorizationRequest:
        """The authorization endpoint's request, from its parameters or a pushed request."""
        client = await self._client_for_authorize(session, raw.get("client_id"))
        request_uri = raw.get("request_uri")
        if request_uri is None:
            if client.require_par:
                # We cannot trust redirect_uri here beyond the registered list check.
                request = self.validate(client, raw)
                raise RedirectError(request, "invalid_request", "This client must use PAR")
            return self.validate(client, raw)
        if not isinstance(request_uri, str) or not request_uri.startswith(PAR_URN):
            raise AuthorizeError("invalid_request", "The request_uri is not one we issued.")
        current = now()
        reference = request_uri[len(PAR_URN) :]
        sealed = self.sealer.open(reference, current.timestamp())
        if sealed is not None:
            # Ours and unaltered; whether it was used already, the login's write tells.
            expires = sealed.get("x")
            if sealed.get("c") != client.client_id or not isinstance(expires, int):
                raise AuthorizeError("invalid_request", "The request_uri is not one we issued.")
            if expires <= current.timestamp():
                raise AuthorizeError(
                    "invalid_request", "The login request has expired or was already used."
                )
            request = AuthorizationRequest.from_params(client, self.issuer, sealed["p"])
            request.pushed_id = str(sealed["i"])
            request.pushed_until = datetime.fromtimestamp(expires, UTC)
            return request
        # A stored pushed request: one statement claims it (found, ours, unused, unexpired).
        params = await fetch_value(
            session,
            CLAIM_PUSHED,
            {
                "pending_id": reference,
                "b_client_id": client.client_id,
                "now": current,
                "at": current,
            },
        )
        if params is None:
            raise AuthorizeError(
                "invalid_request", "The login request has expired or was already used."
            )
        return AuthorizationRequest.from_params(client, self.issuer, params)

    async def sso_state(self, session: AsyncSession, cookie: str | None) -> SsoState | None:
        """The live SSO session behind a cookie, touching its idle timer."""
        if not cookie or len(cookie) > 100:
            return None
        row = await session.scalar(
            select(SsoSession).where(SsoSession.cookie_hash == token_hash(cookie))
        )
        if row is None or row.ended_at is not None:
            return None
        current = now()
        idle = timedelta(minutes=self.settings.sso_idle_minutes)
        if aware(row.expires_at) <= current or aware(row.last_seen) + idle <= current:
            return None
        row.last_seen = current
        return SsoState(
            id=row.id,
            pid=row.pid,
            acr=row.acr,
            amr=tuple(row.amr),
            auth_time=aware(row.auth_time),
            locale=row.locale,
        )

    async def decide(
        self,
        session: AsyncSession,
        request: AuthorizationRequest,
        sso: SsoState | None,
        *,
        hold: bool = True,
    ) -> LoginDone | NeedsLogin:
        """Answer at once from the SSO session, or send the person to log in.

        With `hold=False` the request is not yet stored for the login pages (the caller
        may finish the login at once, as a TestID hint does); call `hold` if it cannot.
        """
        fresh_enough = sso is not None and (
            request.max_age is None or (now() - sso.auth_time).total_seconds() <= request.max_age
        )
        if (
            sso is not None
            and fresh_enough
            and "login" not in request.prompt
            and levels.satisfies(sso.acr, request.acr_values)
        ):
            code, writes = await self._code_writes(session, request, sso)
            writes.append(self._audit_row("sso_reuse", sso.pid, request.client.client_id, sso.id))
            await self._write_login(session, request, writes)
            return LoginDone(request.success_url(code), None)
        if "none" in request.prompt:
            error = "login_required" if sso is None else "interaction_required"
            raise RedirectError(request, error, "The person must log in")
        pending_id = await self.hold(session, request) if hold else ""
        return NeedsLogin(pending_id, request.wanted_acr, request.login_hint, request.locale)

    async def hold(self, session: AsyncSession, request: AuthorizationRequest) -> str:
        """Keep the request while the person logs in; its id goes to the login pages."""
        pending_id = random_token(32)
        held = row_insert(
            PendingAuthorization,
            id=pending_id,
            client_id=request.client.client_id,
            params=request.params(),
            pushed=False,
            expires_at=now() + timedelta(seconds=PENDING_SECONDS),
            used_at=None,
        )
        await self._write_login(session, request, [held])
        return pending_id

    async def _write_login(
        self, session: AsyncSession, request: AuthorizationRequest, writes: list[Write]
    ) -> None:
        """Write a login's rows together; for a sealed pushed request, with the row that
        records its use, so that a second use writes nothing and is refused."""
        if request.pushed_id is None:
            await write_together(session, *writes)
            return
        used = row_insert(
            PendingAuthorization,
            id=f"par:{request.pushed_id}",
            client_id=request.client.client_id,
            params={},
            pushed=True,
            expires_at=request.pushed_until,
            used_at=now(),
        )
        try:
            await write_together(session, used, *writes)
        except IntegrityError as exc:
            if _PENDING.name not in str(exc.orig):  # the driver's message, not the SQL
                raise
            raise AuthorizeError(
                "invalid_request", "The login request has expired or was already used."
            ) from exc
        request.pushed_id = None  # used now: a later write of this request is not a reuse

    async def pending(self, session: AsyncSession, pending_id: str) -> AuthorizationRequest:
        """A request waiting for its login, or AuthorizeError if gone."""
        row = await session.get(PendingAuthorization, pending_id) if pending_id else None
        if row is None or row.pushed or row.used_at is not None or aware(row.expires_at) < now():
            raise AuthorizeError(
                "invalid_request", "The login has taken too long or is already finished."
            )
        try:
            client = await clients.get_client(session, row.client_id)
        except UnknownClient:
            raise AuthorizeError("invalid_client", "The service is no longer registered.") from None
        return AuthorizationRequest.from_params(client, self.issuer, row.params)

    async def complete(
        self,
        session: AsyncSession,
        request: AuthorizationRequest,
        who: Authenticated,
        sso: SsoState | None,
        *,
        pending_id: str | None = None,
    ) -> LoginDone:
        """A person has logged in: start (or step up) their SSO session and issue a code."""
        if not levels.satisfies(who.acr, request.acr_values):
            raise RedirectError(request, "access_denied", "The login did not reach the level")
        if pending_id is not None:
            claimed = await session.execute(
                update(PendingAuthorization)
                .where(
                    PendingAuthorization.id == pending_id, PendingAuthorization.used_at.is_(None)
                )
                .values(used_at=now())
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise AuthorizeError("invalid_request", "This login is already finished.")
        cookie: str | None = None
        current = now()
        writes: list[Write] = []
        if sso is not None and sso.pid == who.pid:
            # Same person: step up (or re-authenticate) within the same session.
            writes.append(
                update(SsoSession)
                .where(SsoSession.id == sso.id)
                .values(
                    acr=who.acr if levels.rank(who.acr) >= levels.rank(sso.acr) else sso.acr,
                    amr=list(who.amr),
                    auth_time=current,
                    last_seen=current,
                )
            )
            event = "step_up" if levels.rank(who.acr) > levels.rank(sso.acr) else "login"
            state = SsoState(
                sso.id,
                who.pid,
                max(who.acr, sso.acr, key=levels.rank),
                who.amr,
                current,
                request.locale,
            )
        else:
            if sso is not None:  # another person on this browser: end the old session
                await self._end_session_row(session, sso.id)
            cookie = random_token(32)
            sid = random_token(16)
            writes.append(
                row_insert(
                    SsoSession,
                    id=sid,
                    cookie_hash=token_hash(cookie),
                    pid=who.pid,
                    acr=who.acr,
                    amr=list(who.amr),
                    auth_time=current,
                    last_seen=current,
                    expires_at=current + timedelta(minutes=self.settings.sso_absolute_minutes),
                    locale=request.locale,
                    ended_at=None,
                )
            )
            event = "login"
            state = SsoState(sid, who.pid, who.acr, who.amr, current, request.locale)
        writes.append(
            self._audit_row(
                event,
                who.pid,
                request.client.client_id,
                state.id,
                {"acr": who.acr, "method": who.method},
            )
        )
        code, code_writes = await self._code_writes(
            session, request, state, new_session=cookie is not None
        )
        # The session, its audit event and the code: one round trip, all or nothing.
        await self._write_login(session, request, [*writes, *code_writes])
        return LoginDone(request.success_url(code), cookie)

    async def _code_writes(
        self,
        session: AsyncSession,
        request: AuthorizationRequest,
        sso: SsoState,
        *,
        new_session: bool = False,
    ) -> tuple[str, list[Write]]:
        """A new code for this login, and the rows that record it (not yet written)."""
        code = random_token(32)
        client_id = request.client.client_id
        sub = self.subject(request.client, sso.pid)
        writes: list[Write] = [
            row_insert(
                AuthorizationCode,
                code_hash=token_hash(code),
                client_id=client_id,
                session_id=sso.id,
                pid=sso.pid,
                sub=sub,
                redirect_uri=request.redirect_uri,
                scope=" ".join(request.scope),
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                acr=sso.acr,
                amr=list(sso.amr),
                auth_time=sso.auth_time,
                locale=request.locale,
                dpop_jkt=request.dpop_jkt,
                expires_at=now() + timedelta(seconds=CODE_SECONDS),
                used_at=None,
                family_id=None,
            )
        ]
        joined = None if new_session else await session.get(SessionClient, (sso.id, client_id))
        if joined is None:
            writes.append(
                row_insert(
                    SessionClient, session_id=sso.id, client_id=client_id, sub=sub, first_at=now()
                )
            )
        return code, writes

    # --- Token endpoint --------------------------------------------------------------

    async def token(
        self,
        session: AsyncSession,
        client: ClientRecord | None,
        form: dict[str, str],
        *,
        dpop_jkt: str | None = None,
    ) -> dict[str, Any]:
        """Dispatch on grant_type. `client` is None only for the JWT bearer grant,
        which authenticates the client by the grant itself."""
        grant_type = form.get("grant_type")
        if grant_type == GRANT_JWT_BEARER:
            return await self._jwt_bearer(session, client, form, dpop_jkt)
        if client is None:
            raise OAuthError("invalid_client", "Client authentication is required", status=401)
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"This client may not use {grant_type}")
        if client.require_dpop and dpop_jkt is None:
            raise OAuthError("invalid_dpop_proof", "This client must send a DPoP proof")
        if grant_type == GRANT_CODE:
            return await self._code_grant(session, client, form, dpop_jkt)
        if grant_type == GRANT_REFRESH:
            return await self._refresh_grant(session, client, form, dpop_jkt)
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            return await self._machine_token(session, client, form.get("scope", ""), form, dpop_jkt)
        raise OAuthError("unsupported_grant_type", "This grant type is not supported")

    async def _code_grant(
        self,
        session: AsyncSession,
        client: ClientRecord,
        form: dict[str, str],
        dpop_jkt: str | None,
    ) -> dict[str, Any]:
        code = form.get("code") or ""
        verifier = form.get("code_verifier") or ""
        family = random_token(16)
        refresh = random_token(32) if GRANT_REFRESH in client.grant_types else None
        stored_refresh = False
        row: Mapping[str, Any] | None = None
        if code and PKCE_VERIFIER.match(verifier):
            # The usual case in one statement: claim the code only if every check holds.
            current = now()
            params: dict[str, Any] = {
                "b_code_hash": token_hash(code),
                "b_client_id": client.client_id,
                "now": current,
                "b_redirect_uri": form.get("redirect_uri") or "",
                "challenge": s256(verifier),
                "jkt": dpop_jkt or "",
                "at": current,
                "family": family,
            }
            if refresh is not None and dialect_name(session) == "postgresql":
                params.update(
                    r_hash=token_hash(refresh),
                    bound_jkt=dpop_jkt,
                    r_expires=current + timedelta(seconds=client.refresh_token_seconds),
                )
                row = await fetch_row(session, CLAIM_CODE_WITH_REFRESH, params)
                stored_refresh = True
            else:
                row = await fetch_row(session, CLAIM_CODE, params)
        if row is None:
            await self._refuse_code(session, client, code, form, verifier, dpop_jkt)
            raise invalid_grant("The code has already been used")
        return await self._people_tokens(
            session,
            client,
            family=family,
            sub=row["sub"] or self.subject(client, row["pid"]),
            pid=row["pid"],
            scope=row["scope"],
            acr=row["acr"],
            amr=list(row["amr"]),
            auth_time=aware(row["auth_time"]),
            session_id=row["session_id"],
            nonce=row["nonce"],
            locale=row["locale"],
            jkt=dpop_jkt or row["dpop_jkt"],
            with_id_token=True,
            refresh=refresh,
            refresh_stored=stored_refresh,
        )

    async def _refuse_code(
        self,
        session: AsyncSession,
        client: ClientRecord,
        code: str,
        form: dict[str, str],
        verifier: str,
        dpop_jkt: str | None,
    ) -> None:
        """Why a code could not be claimed: the precise OAuth error (the rare path)."""
        row = await session.get(AuthorizationCode, token_hash(code)) if code else None
        if row is None:
            raise invalid_grant("The code is not valid")
        if row.client_id != client.client_id:
            raise invalid_grant("The code was issued to another client")
        if row.used_at is not None:
            # RFC 6749 4.1.2: a reused code revokes what was issued from it.
            if row.family_id:
                await self._revoke_family(session, row.family_id)
            await self._audit(session, "code_reuse", row.pid, client.client_id, row.session_id)
            raise invalid_grant("The code has already been used", keep_changes=True)
        if aware(row.expires_at) < now():
            raise invalid_grant("The code has expired")
        if form.get("redirect_uri") != row.redirect_uri:
            raise invalid_grant("redirect_uri does not match the authorization request")
        if not PKCE_VERIFIER.match(verifier) or s256(verifier) != row.code_challenge:
            raise invalid_grant("The PKCE code_verifier does not match")
        if row.dpop_jkt and row.dpop_jkt != dpop_jkt:
            raise invalid_grant("The DPoP key does not match the one bound at authorization")

    async def _people_tokens(
        self,
        session: AsyncSession,
        client: ClientRecord,
        *,
        family: str,
        sub: str,
        pid: str,
        scope: str,
        acr: str,
        amr: list[str],
        auth_time: datetime,
        session_id: str | None,
        nonce: str | None,
        locale: str,
        jkt: str | None,
        with_id_token: bool,
        refresh: str | None = None,
        refresh_stored: bool = False,
    ) -> dict[str, Any]:
        """The token response; `refresh` is the new refresh token when the client may
        have one (`refresh_stored`: already written along with the claimed code)."""
        access = await self.tokens.access_token(
            client_id=client.client_id,
            scope=scope,
            lifetime=client.access_token_seconds,
            audience=self.issuer,
            sub=sub,
            family=family,
            jkt=jkt,
            # As ID-porten's access tokens do, so userinfo needs no database lookup.
            extra={"pid": pid, "acr": acr, "amr": amr, "auth_time": int(auth_time.timestamp())},
        )
        response: dict[str, Any] = {
            "access_token": access.token,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": access.expires_in,
            "scope": scope,
        }
        if with_id_token:
            claims: dict[str, Any] = {
                "auth_time": int(auth_time.timestamp()),
                "acr": acr,
                "amr": amr,
                "pid": pid,
                "locale": locale,
            }
            if session_id:
                claims["sid"] = session_id
            response["id_token"] = await self.tokens.id_token(
                client_id=client.client_id,
                alg=client.id_token_alg,
                sub=sub,
                claims=claims,
                nonce=nonce,
            )
        if refresh is not None and not refresh_stored:
            issued = now()
            await insert_row(
                session,
                RefreshToken,
                token_hash=token_hash(refresh),
                family_id=family,
                client_id=client.client_id,
                session_id=session_id,
                pid=pid,
                sub=sub,
                scope=scope,
                acr=acr,
                amr=amr,
                auth_time=auth_time,
                dpop_jkt=jkt,
                issued_at=issued,
                expires_at=issued + timedelta(seconds=client.refresh_token_seconds),
            )
        if refresh is not None:
            response["refresh_token"] = refresh
        return response

    async def _refresh_grant(
        self,
        session: AsyncSession,
        client: ClientRecord,
        form: dict[str, str],
        dpop_jkt: str | None,
    ) -> dict[str, Any]:
        presented = form.get("refresh_token") or ""
        row = await session.get(RefreshToken, token_hash(presented)) if presented else None
        if row is None or row.client_id != client.client_id:
            raise invalid_grant("The refresh token is not valid")
        if row.revoked_at is not None:
            raise invalid_grant("The refresh token has been revoked")
        if row.used_at is not None:
            # Reuse of a rotated token: someone has a copy. Revoke the whole family.
            await self._revoke_family(session, row.family_id)
            await self._audit(session, "refresh_reuse", row.pid, client.client_id, row.session_id)
            raise invalid_grant(
                "The refresh token was already used; all its tokens are revoked",
                keep_changes=True,
            )
        if aware(row.expires_at) < now():
            raise invalid_grant("The refresh token has expired")
        if row.dpop_jkt and row.dpop_jkt != dpop_jkt:
            raise invalid_grant("The refresh token is bound to another DPoP key")
        scope = row.scope
        if form.get("scope"):
            narrower = form["scope"].split()
            if not set(narrower) <= set(row.scope.split()):
                raise OAuthError("invalid_scope", "A refresh cannot widen the scope")
            scope = " ".join(narrower)
        claimed = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=now())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            await self._revoke_family(session, row.family_id)
            raise invalid_grant(
                "The refresh token was already used; all its tokens are revoked",
                keep_changes=True,
            )
        return await self._people_tokens(
            session,
            client,
            family=row.family_id,
            sub=row.sub,
            pid=row.pid,
            scope=scope,
            acr=row.acr,
            amr=list(row.amr),
            auth_time=aware(row.auth_time),
            session_id=row.session_id,
            nonce=None,
            locale="nb",
            jkt=row.dpop_jkt,
            with_id_token=False,
            refresh=random_token(32),  # rotation: every use gives a new one
        )

    async def _jwt_bearer(
        self,
        session: AsyncSession,
        client: ClientRecord | None,
        form: dict[str, str],
        dpop_jkt: str | None,
    ) -> dict[str, Any]:
        """Maskinporten's grant (RFC 7523 2.1): the signed grant is the authentication."""
        assertion = form.get("assertion")
        if not assertion:
            raise invalid_request("assertion is required")
        signer, claims = await verify_client_jwt(session, assertion, self.audiences, as_grant=True)
        if client is not None and client.client_id != signer.client_id:
            raise invalid_grant("The grant was signed by another client")
        if GRANT_JWT_BEARER not in signer.grant_types:
            raise OAuthError("unauthorized_client", "This client may not use the JWT bearer grant")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise OAuthError("invalid_scope", "The grant's scope must be a string")
        if signer.require_dpop and dpop_jkt is None:
            raise OAuthError("invalid_dpop_proof", "This client must send a DPoP proof")
        return await self._machine_token(session, signer, scope, claims, dpop_jkt)

    async def _machine_token(
        self,
        session: AsyncSession,
        client: ClientRecord,
        scope: str,
        source: dict[str, Any],
        dpop_jkt: str | None = None,
    ) -> dict[str, Any]:
        if not client.orgnr:
            raise OAuthError("unauthorized_client", "Machine tokens need an organisation")
        requested = set(scope.split())
        if not requested:
            raise OAuthError("invalid_scope", "Ask for at least one scope")
        allowed = await clients.machine_scopes_allowed(session, client, requested)
        refused = requested - allowed
        if refused:
            raise OAuthError(
                "invalid_scope",
                f"The organisation has no access to: {' '.join(sorted(refused))}",
            )
        resource = source.get("resource")
        audience = resource if isinstance(resource, str) and resource else "unspecified"
        granted = " ".join(sorted(allowed))
        access = await self.tokens.access_token(
            client_id=client.client_id,
            scope=granted,
            lifetime=client.access_token_seconds,
            audience=audience,
            jkt=dpop_jkt,
            extra={
                "consumer": {
                    "authority": "iso6523-actorid-upis",
                    "ID": f"0192:{client.orgnr}",
                }
            },
        )
        return {
            "access_token": access.token,
            "token_type": "DPoP" if dpop_jkt else "Bearer",
            "expires_in": access.expires_in,
            "scope": granted,
        }

    # --- Tokens in use ---------------------------------------------------------------

    @staticmethod
    def _revocation_params(jti: str) -> dict[str, str]:
        return {"jti": jti, "family": jti.split(".", 1)[0]}

    async def is_revoked(self, session: AsyncSession, jti: str) -> bool:
        found = await fetch_value(session, IS_REVOKED, self._revocation_params(jti))
        return found is not None

    async def access_claims(self, session: AsyncSession, token: str) -> dict[str, Any]:
        """The claims of a live access token we issued, or InvalidToken."""
        claims = await self.tokens.verify_access_token(token)
        if await self.is_revoked(session, str(claims["jti"])):
            raise InvalidToken("revoked")
        return claims

    async def userinfo(self, session: AsyncSession, claims: dict[str, Any]) -> dict[str, Any]:
        """What the person's access token lets the client know about them.

        `claims` are verified (`tokens.verify_access_token`) but not yet checked against
        revocation: that happens here, in the statement that reads the profile."""
        if claims.get("aud") != self.issuer or "sub" not in claims:
            raise InvalidToken("not a token for userinfo")
        scope = str(claims.get("scope", "")).split()
        if "openid" not in scope:
            raise InvalidToken("the token lacks the openid scope")
        pid = claims.get("pid")
        if not isinstance(pid, str):
            raise InvalidToken("the token carries no person")
        info: dict[str, Any] = {
            "sub": claims["sub"],
            "pid": pid,
            "acr": claims.get("acr"),
            "amr": claims.get("amr"),
            "auth_time": claims.get("auth_time"),
        }
        jti = str(claims["jti"])
        if "profile" not in scope:
            if await self.is_revoked(session, jti):
                raise InvalidToken("revoked")
        else:
            try:
                person = await PROFILE_UNLESS_REVOKED.find(
                    session,
                    pid,
                    registry.Access(f"identity:{claims.get('client_id')}", "userinfo (profile)"),
                    self._revocation_params(jti),
                )
            except registry.Refused:
                raise InvalidToken("revoked") from None
            if person is not None:
                info.update(
                    name=person.full_name,
                    given_name=" ".join(p for p in (person.given_name, person.middle_name) if p),
                    family_name=person.family_name,
                    birthdate=person.birth_date.isoformat(),
                )
        return info

    async def introspect(
        self, session: AsyncSession, client: ClientRecord, token: str
    ) -> dict[str, Any]:
        """RFC 7662: is this token active, and what does it say?"""
        if not token:
            return {"active": False}
        if token.count(".") == 2:
            try:
                claims = await self.access_claims(session, token)
            except InvalidToken:
                return {"active": False}
            return {"active": True, "token_type": "Bearer", **claims}
        row = await session.get(RefreshToken, token_hash(token))
        if (
            row is None
            or row.client_id != client.client_id  # only its own client learns about it
            or row.used_at is not None
            or row.revoked_at is not None
            or aware(row.expires_at) < now()
        ):
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",  # not an RFC 6749 5.1 type: says what it is
            "client_id": row.client_id,
            "sub": row.sub,
            "scope": row.scope,
            "exp": int(aware(row.expires_at).timestamp()),
            "iat": int(aware(row.issued_at).timestamp()),
            "iss": self.issuer,
        }

    async def revoke(self, session: AsyncSession, client: ClientRecord, token: str) -> None:
        """RFC 7009: revoke a refresh token (its family) or an access token. Unknown
        tokens are not an error: the client's goal, a dead token, is reached."""
        if not token:
            return
        if token.count(".") == 2:
            try:
                claims = await self.tokens.verify_access_token(token)
            except InvalidToken:
                return
            if claims.get("client_id") == client.client_id:
                await self._revoke_jti(session, str(claims["jti"]), int(claims["exp"]))
            return
        row = await session.get(RefreshToken, token_hash(token))
        if row is not None and row.client_id == client.client_id:
            await self._revoke_family(session, row.family_id)

    async def _revoke_jti(self, session: AsyncSession, jti: str, exp: int) -> None:
        if await session.get(RevokedToken, jti) is None:
            session.add(RevokedToken(jti=jti, expires_at=datetime.fromtimestamp(exp, UTC)))

    async def _revoke_family(self, session: AsyncSession, family: str) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        horizon = int((now() + timedelta(hours=25)).timestamp())  # outlives any access token
        await self._revoke_jti(session, family, horizon)
        await session.flush()

    # --- Logout ----------------------------------------------------------------------

    async def id_token_hint_claims(self, hint: str) -> dict[str, Any] | None:
        """The claims of an ID token we issued (expired is fine for a logout hint)."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        if hint.count(".") != 2 or len(hint) > 8192:
            return None
        try:
            keys = await self.tokens.keys.verification_keys()
            decoded = jwt.decode(hint, keys, algorithms=["RS256", "ES256"])
        except (JoseError, ValueError):
            return None
        claims = dict(decoded.claims)
        return claims if claims.get("iss") == self.issuer else None

    async def logout(
        self,
        session: AsyncSession,
        sso: SsoState | None,
        *,
        client: ClientRecord | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
        hinted_sid: str | None = None,
    ) -> LogoutResult:
        """End the SSO session and tell every client that shared it (single logout)."""
        redirect_url = None
        if post_logout_redirect_uri:
            if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
                raise invalid_request("post_logout_redirect_uri is not registered for the client")
            query = urlencode({"state": state}) if state else ""
            separator = "&" if urlparse(post_logout_redirect_uri).query else "?"
            redirect_url = post_logout_redirect_uri + (separator + query if query else "")
        session_id = sso.id if sso else hinted_sid
        frontchannel: list[str] = []
        backchannel: list[tuple[str, str]] = []
        if session_id:
            row = await session.get(SsoSession, session_id)
            if row is not None and row.ended_at is None:
                joined = (
                    await session.scalars(
                        select(SessionClient).where(SessionClient.session_id == session_id)
                    )
                ).all()
                for member in joined:
                    try:
                        rp = await clients.get_client(session, member.client_id)
                    except UnknownClient:
                        continue
                    if rp.frontchannel_logout_uri:
                        query = urlencode({"iss": self.issuer, "sid": session_id})
                        sep = "&" if urlparse(rp.frontchannel_logout_uri).query else "?"
                        frontchannel.append(f"{rp.frontchannel_logout_uri}{sep}{query}")
                    if rp.backchannel_logout_uri:
                        token = await self.tokens.logout_token(
                            client_id=rp.client_id,
                            alg=rp.id_token_alg,
                            sub=member.sub,
                            sid=session_id,
                        )
                        backchannel.append((rp.backchannel_logout_uri, token))
                await self._end_session_row(session, session_id)
                await self._audit(
                    session, "logout", row.pid, client.client_id if client else None, session_id
                )
        return LogoutResult(frontchannel, backchannel, redirect_url)

    async def _end_session_row(self, session: AsyncSession, session_id: str) -> None:
        await session.execute(
            update(SsoSession).where(SsoSession.id == session_id).values(ended_at=now())
        )
        families = (
            await session.scalars(
                select(RefreshToken.family_id)
                .where(RefreshToken.session_id == session_id, RefreshToken.revoked_at.is_(None))
                .distinct()
            )
        ).all()
        for family in families:
            await self._revoke_family(session, family)

    # --- Audit -----------------------------------------------------------------------

    async def _audit(
        self,
        session: AsyncSession,
        event: str,
        pid: str | None,
        client_id: str | None,
        session_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await write_together(session, self._audit_row(event, pid, client_id, session_id, detail))

    @staticmethod
    def _audit_row(
        event: str,
        pid: str | None,
        client_id: str | None,
        session_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> NewRow:
        return row_insert(
            AuditEvent,
            at=now(),
            event=event,
            pid=pid,
            client_id=client_id,
            session_id=session_id,
            detail=detail or {},
        )


def s256(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)) without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def parse_testid_hint(hint: str | None) -> tuple[str, str] | None:
    """`testid:<pid>_<acr>` (ID-porten's test convention) → (pid, acr), or None."""
    if not hint or not hint.startswith("testid:"):
        return None
    body = hint[len("testid:") :]
    pid, _, acr = body.partition("_")
    try:
        number = parse_pid(pid).value
    except InvalidNumber:
        return None
    return number, acr if acr in levels.LEVELS else levels.SUBSTANTIAL
