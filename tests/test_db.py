"""felles.db's hot-path helpers against the real database (SQLite or PostgreSQL).

Writes that belong together must land together or not at all, and a prebuilt
statement must give the same answer whether it runs through SQLAlchemy or straight on
the driver pool (PostgreSQL autocommit sessions).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from felles.config import Settings
from felles.db import (
    Database,
    NewRow,
    fetch_row,
    fetch_value,
    fetch_values,
    row_insert,
    write_together,
)
from felles.identity.models import AuditEvent, SsoSession

SESSIONS = SsoSession.__table__
assert isinstance(SESSIONS, Table)
READ_SESSION = select(SESSIONS).where(SESSIONS.c.id == bindparam("b_id"))
COUNT_SESSIONS = select(func.count()).select_from(SESSIONS)
ALL_SESSION_IDS = select(SESSIONS.c.id).order_by(SESSIONS.c.id)


def new_session_row(sid: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": sid,
        "cookie_hash": secrets.token_hex(32),
        "pid": "01897612345",
        "acr": "idporten-loa-high",
        "amr": ["TestID", "extra"],
        "auth_time": now,
        "last_seen": now,
        "expires_at": now + timedelta(hours=2),
        "locale": "nn",
        "ended_at": None,
    }


def audit_row(session_id: str, detail: dict[str, object]) -> NewRow:
    return row_insert(
        AuditEvent,
        at=datetime.now(UTC),
        event="login",
        pid=None,
        client_id="c",
        session_id=session_id,
        detail=detail,
    )


async def audit_count(db: Database, session_id: str) -> int:
    async with db.session() as session:
        query = select(func.count()).where(AuditEvent.session_id == session_id)
        return int(await session.scalar(query) or 0)


@pytest.mark.parametrize("autocommit", [False, True])
async def test_rows_written_together_land_together(db: Database, autocommit: bool) -> None:
    sid = secrets.token_hex(8)
    async with db.session(autocommit=autocommit) as session:
        await write_together(
            session,
            row_insert(SsoSession, **new_session_row(sid)),
            audit_row(sid, {"why": "test"}),
        )
    async with db.session(autocommit=autocommit) as session:
        row = await fetch_row(session, READ_SESSION, {"b_id": sid})
    assert row is not None
    assert row["amr"] == ["TestID", "extra"]  # JSON back as JSON on both paths
    assert row["locale"] == "nn"
    assert await audit_count(db, sid) == 1


@pytest.mark.parametrize("autocommit", [False, True])
async def test_rows_written_together_fail_together(db: Database, autocommit: bool) -> None:
    taken = secrets.token_hex(8)
    async with db.session() as session:
        await write_together(session, row_insert(SsoSession, **new_session_row(taken)))
    fresh = secrets.token_hex(8)
    with pytest.raises(IntegrityError):
        async with db.session(autocommit=autocommit) as session:
            await write_together(
                session,
                audit_row(fresh, {}),
                row_insert(SsoSession, **new_session_row(taken)),  # duplicate key
            )
    assert await audit_count(db, fresh) == 0  # the audit row did not land alone


async def test_driver_pool_answers_like_sqlalchemy(db: Database) -> None:
    sid = secrets.token_hex(8)
    async with db.session() as session:
        await write_together(session, row_insert(SsoSession, **new_session_row(sid)))
    async with db.session() as session:  # a transaction: always through SQLAlchemy
        through_session = await fetch_row(session, READ_SESSION, {"b_id": sid})
        missing = await fetch_value(session, READ_SESSION, {"b_id": "nothing"})
    async with db.session(autocommit=True) as session:
        direct = await fetch_row(session, READ_SESSION, {"b_id": sid})
        assert session.in_transaction() is not db.direct  # the driver pool took it
    async with db.session() as session:
        ids_through_session = await fetch_values(session, ALL_SESSION_IDS, {})
    async with db.session(autocommit=True) as session:
        ids_direct = await fetch_values(session, ALL_SESSION_IDS, {})
    assert sid in ids_direct and ids_direct == ids_through_session
    assert through_session is not None and direct is not None
    assert dict(direct) == dict(through_session)
    assert missing is None
    assert direct["auth_time"].tzinfo is not None or db.is_sqlite


async def test_direct_pool_is_bounded(settings: Settings) -> None:
    database = Database(settings.resolved_database_url, connections=3)
    try:
        if not database.direct:
            pytest.skip("the driver pool is for PostgreSQL on asyncpg")
        async with database.session(autocommit=True) as session:
            assert await fetch_value(session, COUNT_SESSIONS, {}) >= 0
        assert database.driver_pool().size == 3
        assert database.engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        await database.dispose()


async def test_serve_warns_when_the_pools_could_exceed_max_connections(db: Database) -> None:
    from felles.cli import connection_budget_warning

    assert await connection_budget_warning(db, workers=1) is None
    crowded = await connection_budget_warning(db, workers=1000)
    if db.is_sqlite:
        assert crowded is None  # no connection limit to respect
    else:
        assert crowded is not None and "FELLES_DB_CONNECTIONS=" in crowded
        assert "max_connections" in crowded


async def test_a_cancelled_unit_of_work_rolls_back_and_frees_its_connection(
    db: Database,
) -> None:
    """A request cancelled mid-transaction (a client gone, a timeout) must not leave its
    transaction open: on SQLite that would hold the write lock until the garbage
    collector found the connection, and every other writer would wait for it."""
    import anyio

    sid = secrets.token_hex(8)
    kept = []  # as a reference cycle would: the collector cannot end it either
    with anyio.CancelScope() as scope:
        async with db.session() as session:
            kept.append(session)
            await session.execute(SESSIONS.insert().values(**new_session_row(sid)))
            scope.cancel()
            await anyio.sleep(5)  # cancelled here, with the write still open
    assert scope.cancelled_caught
    other = Database(db.url)  # another connection: a write goes through at once
    try:
        with anyio.fail_after(3):
            async with other.session() as session:
                await session.execute(SESSIONS.insert().values(**new_session_row(sid + "b")))
                found = await session.scalar(
                    select(func.count()).select_from(SESSIONS).where(SESSIONS.c.id == sid)
                )
        assert found == 0
    finally:
        await other.dispose()
        kept.clear()


@pytest.mark.parametrize("rows", [3, 120])  # an INSERT below COPY_FROM, COPY from it
async def test_insert_many_keeps_every_value_and_refuses_a_duplicate(
    db: Database, rows: int
) -> None:
    from felles.db import insert_many

    audit = AuditEvent.__table__
    assert isinstance(audit, Table)
    session_id = secrets.token_hex(8)
    now = datetime.now(UTC)
    events = [
        {
            "at": now,
            "event": "login",
            "pid": None,
            "client_id": f"c{i}",
            "session_id": session_id,
            "detail": {"n": i, "æøå": ["ja", None]},
        }
        for i in range(rows)
    ]
    async with db.session() as session:
        await insert_many(session, audit, events)
    async with db.session() as session:
        found = (
            await session.execute(
                select(audit.c.client_id, audit.c.detail, audit.c.pid)
                .where(audit.c.session_id == session_id)
                .order_by(audit.c.id)
            )
        ).all()
    assert [(c, d, p) for c, d, p in found] == [
        (f"c{i}", {"n": i, "æøå": ["ja", None]}, None) for i in range(rows)
    ]
    sessions = [new_session_row(f"{session_id}-{i}") for i in range(rows)]
    async with db.session() as session:
        await insert_many(session, SESSIONS, sessions)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await insert_many(session, SESSIONS, [new_session_row(f"{session_id}-x"), *sessions])
    async with db.session() as session:  # the refused call left nothing behind
        assert (
            await session.scalar(
                select(func.count()).select_from(SESSIONS).where(SESSIONS.c.id == f"{session_id}-x")
            )
            == 0
        )
