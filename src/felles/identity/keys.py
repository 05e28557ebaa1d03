"""The keys that sign our tokens: made, rotated, published as a JWKS and pruned.

Private keys live in `identity_signing_key`, encrypted under the master key with the
kid bound as associated data, so a database dump alone signs nothing. Every process
keeps the decrypted keys and the ready-made JWKS in memory for `cache_seconds`:
issuing a token and serving the JWKS cost a dictionary look-up, not a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey
from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database
from felles.identity import crypto
from felles.identity.models import SigningKey
from felles.web.observability import log

SUPPORTED_ALGS = ("RS256", "ES256")
RSA_BITS = 2048
EC_CURVE = "P-256"
# Any constant works; it only has to be the same in every process of one installation.
_PG_LOCK_ID = 0x466C_6B65_7973  # "Flkeys"

Jwk = RSAKey | ECKey
KeyStatus = Literal["active", "retired", "expired"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check_alg(alg: str) -> None:
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"Unsupported signing algorithm {alg!r}; use one of {SUPPORTED_ALGS}")


def _key_class(alg: str) -> type[RSAKey] | type[ECKey]:
    return RSAKey if alg == "RS256" else ECKey


def _generate(alg: str) -> Jwk:
    """A fresh private key whose kid is its RFC 7638 thumbprint (unique, no coordination)."""
    params: KeyParameters = {"alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(RSA_BITS, parameters=params, auto_kid=True)
    return ECKey.generate_key(EC_CURVE, parameters=params, auto_kid=True)


def _row(key: Jwk, alg: str, master_key: bytes, now: datetime) -> SigningKey:
    kid = key.kid
    assert kid is not None
    return SigningKey(
        kid=kid,
        alg=alg,
        public_jwk=dict(key.as_dict(private=False)),
        private_key=crypto.encrypt(master_key, key.as_pem(private=True), context=kid.encode()),
        created_at=now,
        retired_at=None,
        publish_until=None,
    )


def status(row: SigningKey, now: datetime) -> KeyStatus:
    """Active keys sign; retired ones are only published; expired ones await prune()."""
    if row.retired_at is None:
        return "active"
    if row.publish_until is not None and as_utc(row.publish_until) > now:
        return "retired"
    return "expired"


class WrongMasterKey(RuntimeError):
    """A stored private key does not decrypt: this is not the master key it was made with."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an operator sees about a key (never the private half)."""

    kid: str
    alg: str
    created_at: datetime
    retired_at: datetime | None
    publish_until: datetime | None
    status: KeyStatus


async def list_keys(db: Database) -> list[KeyInfo]:
    """Every stored key, newest first, for the CLI and operators."""
    now = utcnow()
    async with db.session() as session:
        rows = (
            await session.scalars(
                select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
            )
        ).all()
    return [
        KeyInfo(
            kid=row.kid,
            alg=row.alg,
            created_at=as_utc(row.created_at),
            retired_at=as_utc(row.retired_at) if row.retired_at else None,
            publish_until=as_utc(row.publish_until) if row.publish_until else None,
            status=status(row, now),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One consistent view of the keys, valid until `expires` (time.monotonic())."""

    signing: dict[str, Jwk]
    jwks: dict[str, Any]
    keyset: KeySet
    expires: float
    jwks_json: bytes  # `jwks` serialised once, for the JWKS endpoint


class KeyStore:
    """Signing keys for one database, cached in this process for `cache_seconds`.

    A rotation made here is seen at once; one made by another process within
    `cache_seconds`, which is why a retired key stays published that much longer.
    """

    def __init__(self, db: Database, master_key: bytes, *, cache_seconds: float = 30.0) -> None:
        self.db = db
        self._master_key = master_key
        self.cache_seconds = cache_seconds
        self._snapshot: _Snapshot | None = None
        self._generation = 0  # bumped by invalidate(): a read begun earlier is not kept
        # Keys never change under a kid, so decrypted and parsed keys outlive a refresh.
        self._private: dict[str, Jwk] = {}
        self._public: dict[str, Jwk] = {}
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task[None] | None = None

    # -- keeping the cache warm in a server --------------------------------------------

    def start_refreshing(self) -> None:
        """Refresh the cache in the background, twice per `cache_seconds`, so requests
        never wait for the database (or, on SQLite, for a pooled connection while their
        own transaction holds the write lock). Until a refresh lands, the last snapshot
        is served."""
        if self._refreshing():
            return
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop_refreshing(self) -> None:
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _refreshing(self) -> bool:
        task = self._refresher
        return task is not None and not task.done()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(max(self.cache_seconds / 2, 0.01))
            try:
                generation = self._generation
                snapshot = await self._load()
                if generation == self._generation:
                    self._snapshot = snapshot
            except Exception as exc:
                log.warning("signing_key_refresh_failed", error=type(exc).__name__)

    # -- the hot path -------------------------------------------------------------

    async def _current(self) -> _Snapshot:
        """The cached view, refreshed first if it has expired and no background refresh
        is keeping it warm."""
        snapshot = self._snapshot
        if snapshot is None or (time.monotonic() >= snapshot.expires and not self._refreshing()):
            snapshot = await self._refresh()
        return snapshot

    async def signing_key(self, alg: str) -> Jwk:
        """The newest active private key for `alg`, with its kid set."""
        _check_alg(alg)
        snapshot = await self._current()
        try:
            return snapshot.signing[alg]
        except KeyError:
            raise LookupError(
                f"No active {alg} signing key: call KeyStore.ensure_keys() at start-up"
            ) from None

    async def jwks(self) -> dict[str, Any]:
        """The public JWKS (shared object: serialise it, never mutate it)."""
        return (await self._current()).jwks

    async def jwks_json(self) -> bytes:
        """The public JWKS, serialised (the endpoint's body, encoded once per refresh)."""
        return (await self._current()).jwks_json

    async def verification_keys(self) -> KeySet:
        """The same keys as jwks(), as a joserfc KeySet for checking our own tokens."""
        return (await self._current()).keyset

    def invalidate(self) -> None:
        """Forget the cached view; the next call reads the database."""
        self._snapshot = None
        self._generation += 1

    # -- changes ----------------------------------------------------------------------

    async def ensure_keys(self) -> None:
        """Make sure every supported alg has an active key; create the missing ones.

        Several processes may start at once: creation runs under a database-wide lock
        and checks again, so exactly one key per alg is made.
        """
        async with self.db.session() as session:
            missing = [a for a in SUPPORTED_ALGS if a not in await self._active_algs(session)]
        if not missing:
            return
        # Key generation (RSA takes tens of ms) runs off the event loop and outside the lock.
        fresh = {alg: await asyncio.to_thread(_generate, alg) for alg in missing}
        async with self.db.session() as session:
            await self._lock_keys(session)
            present = await self._active_algs(session)  # another process may have won
            added = {alg: key for alg, key in fresh.items() if alg not in present}
            now = utcnow()
            for alg, key in added.items():
                session.add(_row(key, alg, self._master_key, now))
        for key in added.values():
            self._remember(key)
        self.invalidate()

    async def rotate(self, *, alg: str | None = None, token_lifetime: timedelta) -> list[str]:
        """A new key per alg (or only `alg`) signs from now on; the old ones are retired.

        A retired key stays in the JWKS for `token_lifetime` plus `cache_seconds`: other
        processes may sign with it until their cache expires, and what they sign must
        verify for its whole lifetime.
        """
        algs = SUPPORTED_ALGS if alg is None else (alg,)
        for name in algs:
            _check_alg(name)
        if token_lifetime < timedelta(0):
            raise ValueError("token_lifetime cannot be negative")
        fresh = {name: await asyncio.to_thread(_generate, name) for name in algs}
        async with self.db.session() as session:
            await self._lock_keys(session)
            now = utcnow()
            publish_until = now + token_lifetime + timedelta(seconds=self.cache_seconds)
            await session.execute(
                update(SigningKey)
                .where(SigningKey.alg.in_(algs), SigningKey.retired_at.is_(None))
                .values(retired_at=now, publish_until=publish_until)
            )
            for name, key in fresh.items():
                session.add(_row(key, name, self._master_key, now))
        for key in fresh.values():
            self._remember(key)
        self.invalidate()
        return [str(key.kid) for key in fresh.values()]

    async def prune(self) -> int:
        """Delete retired keys whose publish_until has passed: nothing they signed is valid."""
        async with self.db.session() as session:
            result = await session.execute(
                delete(SigningKey).where(
                    SigningKey.retired_at.is_not(None),
                    or_(SigningKey.publish_until.is_(None), SigningKey.publish_until <= utcnow()),
                )
            )
        self.invalidate()
        return int(getattr(result, "rowcount", 0) or 0)

    # -- internals --------------------------------------------------------------------

    async def _refresh(self) -> _Snapshot:
        """Read the keys once, even when many requests find the cache stale together."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and time.monotonic() < snapshot.expires:
                return snapshot
            generation = self._generation
            snapshot = await self._load()
            if generation == self._generation:
                self._snapshot = snapshot
            return snapshot

    async def _load(self) -> _Snapshot:
        now = utcnow()
        async with self.db.session() as session:
            rows = (
                await session.scalars(
                    select(SigningKey)
                    .where(or_(SigningKey.retired_at.is_(None), SigningKey.publish_until > now))
                    .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
                )
            ).all()
        signing: dict[str, Jwk] = {}
        for row in rows:
            if row.retired_at is None and row.alg in SUPPORTED_ALGS and row.alg not in signing:
                signing[row.alg] = self._decrypt(row)
        published = [row for row in rows if row.alg in SUPPORTED_ALGS]
        jwks = {"keys": [dict(row.public_jwk) for row in published]}
        keyset = KeySet([self._public_key(row) for row in published])
        # Refresh early when a retired key's publication ends before the cache would.
        ttl = self.cache_seconds
        for row in published:
            if row.retired_at is not None and row.publish_until is not None:
                ttl = min(ttl, (as_utc(row.publish_until) - now).total_seconds())
        self._private = {key.kid: key for key in signing.values() if key.kid}
        self._public = {row.kid: self._public[row.kid] for row in published}
        encoded = json.dumps(jwks, separators=(",", ":")).encode()
        return _Snapshot(signing, jwks, keyset, time.monotonic() + max(ttl, 0.0), encoded)

    def _decrypt(self, row: SigningKey) -> Jwk:
        cached = self._private.get(row.kid)
        if cached is not None:
            return cached
        try:
            pem = crypto.decrypt(self._master_key, row.private_key, context=row.kid.encode())
        except InvalidTag:
            raise WrongMasterKey(
                f"Cannot decrypt signing key {row.kid}: the master key is not the one it "
                "was stored with (check FELLES_MASTER_KEY or var/keys/master.key)"
            ) from None
        key = _key_class(row.alg).import_key(
            pem, parameters={"kid": row.kid, "alg": row.alg, "use": "sig"}
        )
        if key.thumbprint() != row.kid:
            raise RuntimeError(f"Signing key {row.kid} does not match its kid")
        return key

    def _public_key(self, row: SigningKey) -> Jwk:
        key = self._public.get(row.kid)
        if key is None:
            key = _key_class(row.alg).import_key(dict(row.public_jwk))
            self._public[row.kid] = key
        return key

    def _remember(self, key: Jwk) -> None:
        """Keys made here need no decryption when they are first used."""
        if key.kid:
            self._private[key.kid] = key

    async def _active_algs(self, session: AsyncSession) -> set[str]:
        rows = await session.scalars(
            select(SigningKey.alg).where(SigningKey.retired_at.is_(None)).distinct()
        )
        return set(rows.all())

    async def _lock_keys(self, session: AsyncSession) -> None:
        """Serialise key changes across processes until this transaction ends.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: a write that changes
        nothing takes the database write lock, which waits up to busy_timeout.
        """
        if self.db.engine.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        else:
            await session.execute(
                text(f"UPDATE {SigningKey.__tablename__} SET kid = kid WHERE 1 = 0")  # noqa: S608
            )
