"""Expired rows are purged (felles.identity.housekeeping), on both databases: what
expired more than the margin ago goes, in batches; what is alive or only just expired
stays; an SSO session takes its session-client rows with it."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.identity.housekeeping import MARGIN, purge
from felles.identity.models import (
    AuthorizationCode,
    PendingAuthorization,
    RateCounter,
    RefreshToken,
    RevokedToken,
    SeenJti,
    SessionClient,
    SsoSession,
)
from tests.conftest import run_felles

NOW = datetime.now(UTC)
LONG_AGO = NOW - MARGIN - timedelta(hours=1)
JUST_NOW = NOW - timedelta(minutes=5)  # expired, but within the margin
LATER = NOW + timedelta(hours=1)


def rows(expires: datetime, tag: str) -> list[Any]:
    sid = f"{tag}-{secrets.token_hex(6)}"
    common = {"pid": "01897612345", "acr": "idporten-loa-high", "amr": ["TestID"]}
    return [
        PendingAuthorization(
            id=f"{tag}-{secrets.token_hex(6)}",
            client_id="c",
            params={},
            pushed=True,
            expires_at=expires,
        ),
        AuthorizationCode(
            code_hash=secrets.token_hex(32),
            client_id="c",
            session_id=sid,
            redirect_uri="https://rp.example/cb",
            scope="openid",
            code_challenge="x" * 43,
            auth_time=NOW,
            locale="nb",
            expires_at=expires,
            **common,
        ),
        RefreshToken(
            token_hash=secrets.token_hex(32),
            family_id=tag,
            client_id="c",
            sub="s",
            scope="openid",
            auth_time=NOW,
            issued_at=NOW,
            expires_at=expires,
            **common,
        ),
        RevokedToken(jti=f"{tag}-{secrets.token_hex(6)}", expires_at=expires),
        SeenJti(issuer="c", jti=f"{tag}-{secrets.token_hex(6)}", expires_at=expires),
        SsoSession(
            id=sid,
            cookie_hash=secrets.token_hex(32),
            auth_time=NOW,
            last_seen=NOW,
            expires_at=expires,
            locale="nb",
            **common,
        ),
        SessionClient(session_id=sid, client_id="c", sub="s", first_at=NOW),
        RateCounter(
            key=f"{tag}-{secrets.token_hex(6)}", window_start=expires - timedelta(hours=23)
        ),
    ]


async def surviving(db: Database, made: list[Any]) -> int:
    alive = 0
    async with db.session() as session:
        for row in made:
            table = type(row).__table__
            key = [getattr(row, c.name) for c in table.primary_key.columns]
            found = await session.scalar(
                select(table.c[table.primary_key.columns[0].name]).where(
                    *[c == v for c, v in zip(table.primary_key.columns, key, strict=True)]
                )
            )
            alive += found is not None
    return alive


async def test_purge_deletes_what_expired_long_ago_in_batches(db: Database) -> None:
    old = [row for _ in range(3) for row in rows(LONG_AGO, "old")]
    recent = rows(JUST_NOW, "recent")
    alive = rows(LATER, "alive")
    async with db.session() as session:
        for group in (old, recent, alive):
            session.add_all([r for r in group if not isinstance(r, SessionClient)])
            await session.flush()
            session.add_all([r for r in group if isinstance(r, SessionClient)])
            await session.flush()
    removed = await purge(db, batch=2)  # three of each kind: two batches each
    for what in ("codes", "refresh tokens", "revocations", "seen jtis", "SSO sessions"):
        assert removed[what] >= 3, what
    assert await surviving(db, old) == 0  # session-client rows went with their sessions
    assert await surviving(db, recent) == len(recent)
    assert await surviving(db, alive) == len(alive)
    assert sum((await purge(db)).values()) == 0  # nothing left to do


async def test_purge_from_the_command_line(settings: Settings, db: Database) -> None:
    async with db.session() as session:
        session.add(RevokedToken(jti=f"cli-{secrets.token_hex(6)}", expires_at=LONG_AGO))
    done = run_felles(settings, "identity", "purge", "--json")
    assert done.returncode == 0, done.stderr
    removed = json.loads(done.stdout)
    assert removed["revocations"] >= 1
    assert set(removed) >= {"codes", "SSO sessions", "pushed and held requests"}
