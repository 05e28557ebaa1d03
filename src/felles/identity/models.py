"""Tables of the identity part: clients, keys, sessions, codes, tokens, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from felles.db import Base


class SigningKey(Base):
    """A key that signs tokens. The private half is encrypted under the master key."""

    __tablename__ = "identity_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM(master key, PEM)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # After this moment no token it signed can still be valid: drop it from the JWKS.
    publish_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Client(Base):
    """A registered client: a public service's web app (people) or an agency's server."""

    __tablename__ = "identity_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    orgnr: Mapped[str | None] = mapped_column(String(9), index=True)
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    auth_method: Mapped[str] = mapped_column(String(30))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    require_par: Mapped[bool] = mapped_column(Boolean, default=False)
    require_dpop: Mapped[bool] = mapped_column(Boolean, default=False)
    sector_identifier: Mapped[str | None] = mapped_column(String(255))
    id_token_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    access_token_seconds: Mapped[int] = mapped_column(Integer, default=120)
    refresh_token_seconds: Mapped[int] = mapped_column(Integer, default=8 * 3600)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiScope(Base):
    """A scope an agency exposes for its API; the owner decides who may use it."""

    __tablename__ = "identity_scope"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(9))
    description: Mapped[str] = mapped_column(String(500), default="")
    for_people: Mapped[bool] = mapped_column(Boolean, default=False)
    for_machines: Mapped[bool] = mapped_column(Boolean, default=True)
    # Open to every organisation (no grant needed), as some national APIs are.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScopeGrant(Base):
    """The owner of a scope lets a consumer organisation use it."""

    __tablename__ = "identity_scope_grant"

    scope: Mapped[str] = mapped_column(
        ForeignKey("identity_scope.name", ondelete="CASCADE"), primary_key=True
    )
    consumer_orgnr: Mapped[str] = mapped_column(String(9), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PendingAuthorization(Base):
    """An authorization request waiting for the person to log in (also PAR's request_uri)."""

    __tablename__ = "identity_pending_authorization"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SsoSession(Base):
    """A person's single sign-on session, shared by every client they log in to."""

    __tablename__ = "identity_sso_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the `sid` claim
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pid: Mapped[str] = mapped_column(String(11), index=True)
    acr: Mapped[str] = mapped_column(String(40))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locale: Mapped[str] = mapped_column(String(2), default="nb")


class SessionClient(Base):
    """A client that took part in an SSO session: it is told when the session ends."""

    __tablename__ = "identity_session_client"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("identity_sso_session.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sub: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # Never loaded; it tells the unit of work to insert the session before this row.
    session: Mapped[SsoSession] = relationship(lazy="raise")


class AuthorizationCode(Base):
    """A one-time code; stored as a hash so a database leak yields no usable codes."""

    __tablename__ = "identity_authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(64))
    pid: Mapped[str] = mapped_column(String(11))
    sub: Mapped[str | None] = mapped_column(String(64))  # the client's pairwise subject
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(String(1000))
    nonce: Mapped[str | None] = mapped_column(String(500))
    code_challenge: Mapped[str] = mapped_column(String(128))
    acr: Mapped[str] = mapped_column(String(40))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locale: Mapped[str] = mapped_column(String(2))
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    family_id: Mapped[str | None] = mapped_column(String(64))  # tokens issued from it


class RefreshToken(Base):
    """A refresh token; each use rotates it, and a reused one revokes its whole family."""

    __tablename__ = "identity_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    pid: Mapped[str] = mapped_column(String(11))
    sub: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(1000))
    acr: Mapped[str] = mapped_column(String(40))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RevokedToken(Base):
    """An access token (by jti) or token family revoked before it expired."""

    __tablename__ = "identity_revoked_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SeenJti(Base):
    """A `jti` already used (client assertion, JWT grant, DPoP proof): replays are refused."""

    __tablename__ = "identity_seen_jti"

    issuer: Mapped[str] = mapped_column(String(100), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditEvent(Base):
    """Logins, step-ups, logouts and token events, kept for the person and for operators."""

    __tablename__ = "identity_audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    event: Mapped[str] = mapped_column(String(40))
    pid: Mapped[str | None] = mapped_column(String(11))
    client_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_identity_audit_event_pid_at", "pid", "at"),)


class RateCounter(Base):
    """A fixed-window counter for rate limits and lockouts when Redis is not configured."""

    __tablename__ = "identity_rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, default=0)


class PasswordCredential(Base):
    """A person's password (argon2id hash) for the password + one-time code method."""

    __tablename__ = "identity_password"

    pid: Mapped[str] = mapped_column(String(11), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TotpCredential(Base):
    """An authenticator app's shared secret, encrypted under the master key."""

    __tablename__ = "identity_totp"

    pid: Mapped[str] = mapped_column(String(11), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int] = mapped_column(Integer, default=0)  # a code works once


class OneTimeCode(Base):
    """A code sent by SMS or e-mail; stored hashed, few attempts, short life."""

    __tablename__ = "identity_one_time_code"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pid: Mapped[str] = mapped_column(String(11), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # "sms" or "email"
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasskeyCredential(Base):
    """A WebAuthn credential (passkey) registered by a person."""

    __tablename__ = "identity_passkey"

    credential_id: Mapped[str] = mapped_column(String(1400), primary_key=True)  # base64url
    pid: Mapped[str] = mapped_column(String(11), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UpstreamProvider(Base):
    """An upstream OpenID Connect provider (like BankID) that Felles brokers logins to."""

    __tablename__ = "identity_upstream_provider"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted
    acr: Mapped[str] = mapped_column(String(40))  # the level a login there gives
    scope: Mapped[str] = mapped_column(String(500), default="openid")
    pid_claim: Mapped[str] = mapped_column(String(50), default="pid")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UpstreamLogin(Base):
    """A login in progress at an upstream provider: state, nonce and PKCE verifier."""

    __tablename__ = "identity_upstream_login"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(50))
    pending_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
