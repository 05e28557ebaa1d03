"""`Idempotency-Key` for API calls that create something: a retried request gets the
first answer again instead of creating a second thing.

The key is scoped to the caller; the same key with a different body is a conflict.
Records live 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import JSON, DateTime, Integer, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from felles.db import Base, Database
from felles.web.problems import ProblemError

KEEP = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class IdempotencyRecord(Base):
    __tablename__ = "web_idempotency"

    caller: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def request_fingerprint(method: str, path: str, payload: Any) -> str:
    text = json.dumps([method, path, payload], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


SECRET_FIELDS = ("client_secret", "secret")


async def once(
    db: Database,
    *,
    caller: str,
    key: str | None,
    fingerprint: str,
    create: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run `create` once per (caller, key); replay its stored answer on a retry.

    The record is written in the same transaction as what `create` makes, so of two
    concurrent requests with one key exactly one creates; the other gets its answer.
    Secrets in the answer are not stored: a replay says they were redacted.
    """
    if key is None:
        async with db.session() as session:
            status, body = await create(session)
        return JSONResponse(body, status_code=status)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ProblemError(
            "validation",
            "Idempotency-Key must be 1-200 printable characters",
            field="Idempotency-Key",
        )
    replay = await _stored(db, caller, key, fingerprint)
    if replay is not None:
        return replay
    try:
        async with db.session() as session:
            await session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.created_at < datetime.now(UTC) - KEEP
                )
            )
            status, body = await create(session)
            session.add(
                IdempotencyRecord(
                    caller=caller,
                    key=key,
                    request_hash=fingerprint,
                    status=status,
                    body=_redacted(body),
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        replay = await _stored(db, caller, key, fingerprint)
        if replay is None:
            raise
        return replay
    return JSONResponse(body, status_code=status)


def _redacted(body: Any) -> Any:
    if isinstance(body, dict) and any(f in body for f in SECRET_FIELDS):
        return {
            **{k: v for k, v in body.items() if k not in SECRET_FIELDS},
            **{f"{f}_redacted": True for f in SECRET_FIELDS if f in body},
        }
    return body


async def _stored(db: Database, caller: str, key: str, fingerprint: str) -> JSONResponse | None:
    async with db.session() as session:
        found = await session.get(IdempotencyRecord, (caller, key))
        if found is None or _aware(found.created_at) <= datetime.now(UTC) - KEEP:
            return None
        if found.request_hash != fingerprint:
            raise ProblemError(
                "conflict",
                "This Idempotency-Key was used for a different request",
                field="Idempotency-Key",
            )
        return JSONResponse(
            found.body, status_code=found.status, headers={"idempotent-replayed": "true"}
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
