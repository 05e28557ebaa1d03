"""Rate limits and lockouts: fixed-window counters shared by every app process.

App processes are stateless, so the counters live in Redis when `FELLES_REDIS_URL` is
set and in the database (`identity_rate_counter`) otherwise. Both backends count with
one atomic step (a Lua script in Redis, an upsert in SQL), so concurrent requests in
many processes can never let more attempts through than the limit.

A window starts at the first hit of a key and lasts `window_seconds`; the hit that
finds the window over starts a new one. Keys name what is counted
(`login-ip:<address>`, `pw-fail:<hash>`); callers hash anything personal first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from felles.config import Settings
from felles.db import Database
from felles.identity.crypto import token_hash
from felles.identity.models import RateCounter

MAX_KEY_LENGTH = 200  # the column's size
REDIS_PREFIX = "felles:rl:"

# INCR and the expiry in one atomic step: a crash between two commands can never
# leave a counter without an expiry (which would lock a key out for ever).
_REDIS_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one hit: go ahead, or wait `retry_after` seconds."""

    allowed: bool
    retry_after: int  # whole seconds until the window ends; 0 when allowed
    count: int = 0  # hits in the current window, this one included


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _decide(count: int, limit: int, remaining_seconds: float) -> Decision:
    if count <= limit:
        return Decision(True, 0, count)
    return Decision(False, max(1, math.ceil(remaining_seconds)), count)


def storage_key(key: str) -> str:
    """Keys longer than the column are hashed, so any key fits and stays distinct."""
    return key if len(key) <= MAX_KEY_LENGTH else "h:" + token_hash(key)


class RateLimiter(ABC):
    """Counts hits per key in fixed windows; see the module docstring."""

    @abstractmethod
    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        """Count one attempt; allowed while the window holds at most `limit` hits."""

    @abstractmethod
    async def peek(self, key: str, limit: int, window_seconds: int) -> Decision:
        """Would one more hit be allowed? Counts nothing (for checking a lockout)."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget a key (a correct password clears its failures)."""

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing
        """Release connections (only Redis holds any)."""


class DatabaseRateLimiter(RateLimiter):
    """Counters in `identity_rate_counter`, for installations without Redis.

    Each hit is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` in its own short
    transaction: the row lock (PostgreSQL) or the write lock (SQLite) serialises
    concurrent hits, and the count is never read and written in two steps. Its own
    transaction also means a hit is kept even if the request's work rolls back.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _upsert(self, key: str, now: datetime, cutoff: datetime) -> Any:
        table = cast(Table, RateCounter.__table__)
        expired = table.c.window_start <= cutoff
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = insert(table).values(key=key, window_start=now, count=1)
        return statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "window_start": case((expired, now), else_=table.c.window_start),
                "count": case((expired, 1), else_=table.c.count + 1),
            },
        ).returning(table.c.window_start, table.c.count)

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = utcnow()
        window = timedelta(seconds=window_seconds)
        async with self.engine.begin() as conn:
            upsert = self._upsert(storage_key(key), now, now - window)
            window_start, count = (await conn.execute(upsert)).one()
        ends = _aware(window_start) + window
        return _decide(int(count), limit, (ends - now).total_seconds())

    async def peek(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = utcnow()
        window = timedelta(seconds=window_seconds)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(RateCounter.window_start, RateCounter.count).where(
                        RateCounter.key == storage_key(key)
                    )
                )
            ).one_or_none()
        if row is None or _aware(row[0]) + window <= now:
            return _decide(1, limit, window_seconds)
        ends = _aware(row[0]) + window
        return _decide(int(row[1]) + 1, limit, (ends - now).total_seconds())

    async def reset(self, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(RateCounter).where(RateCounter.key == storage_key(key)))


class RedisRateLimiter(RateLimiter):
    """Counters in Redis: keys expire on their own, nothing to purge."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self.redis.register_script(_REDIS_HIT)

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        count, ttl_ms = await self._script(keys=[REDIS_PREFIX + key], args=[window_seconds * 1000])
        return _decide(int(count), limit, int(ttl_ms) / 1000)

    async def peek(self, key: str, limit: int, window_seconds: int) -> Decision:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(REDIS_PREFIX + key)
            pipe.pttl(REDIS_PREFIX + key)
            raw, ttl_ms = await pipe.execute()
        if raw is None or int(ttl_ms) == -2:
            return _decide(1, limit, window_seconds)
        remaining = int(ttl_ms) / 1000 if int(ttl_ms) > 0 else window_seconds
        return _decide(int(raw) + 1, limit, remaining)

    async def reset(self, key: str) -> None:
        await self.redis.delete(REDIS_PREFIX + key)

    async def aclose(self) -> None:
        await self.redis.aclose()


def rate_limiter(settings: Settings, db: Database) -> RateLimiter:
    """Redis when configured (shared by every host), otherwise the database."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    return DatabaseRateLimiter(db.engine)
