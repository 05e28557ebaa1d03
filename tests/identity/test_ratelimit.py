"""Rate limits on both backends: the database of this run (SQLite or PostgreSQL) and
Redis, with real concurrency: many hits at once never let more through than the limit."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from felles.config import Settings
from felles.db import Database
from felles.identity import housekeeping
from felles.identity.models import RateCounter
from felles.identity.ratelimit import (
    MAX_KEY_LENGTH,
    DatabaseRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    rate_limiter,
    storage_key,
    utcnow,
)

REDIS_URL = os.environ.get("FELLES_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def _redis_or_skip() -> RedisRateLimiter:
    limiter = RedisRateLimiter(REDIS_URL)
    try:
        await limiter.redis.ping()
    except Exception as exc:
        await limiter.aclose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc})")
    return limiter


@pytest.fixture(params=["database", "redis"])
async def limiter(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[RateLimiter]:
    if request.param == "database":
        yield DatabaseRateLimiter(db.engine)
        return
    redis = await _redis_or_skip()
    yield redis
    await redis.aclose()


def fresh_key(prefix: str = "test") -> str:
    return f"{prefix}:{secrets.token_hex(8)}"


async def test_allows_up_to_the_limit_then_says_how_long_to_wait(limiter: RateLimiter) -> None:
    key = fresh_key()
    decisions = [await limiter.hit(key, 3, 60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.count for d in decisions] == [1, 2, 3, 4, 5]
    assert all(d.retry_after == 0 for d in decisions[:3])
    assert all(55 <= d.retry_after <= 60 for d in decisions[3:])


async def test_keys_are_counted_apart(limiter: RateLimiter) -> None:
    first, second = fresh_key(), fresh_key()
    for _ in range(2):
        await limiter.hit(first, 1, 60)
    assert not (await limiter.hit(first, 1, 60)).allowed
    assert (await limiter.hit(second, 1, 60)).allowed


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    key = fresh_key()
    assert (await limiter.peek(key, 1, 60)).allowed
    assert (await limiter.peek(key, 1, 60)).allowed
    await limiter.hit(key, 1, 60)
    blocked = await limiter.peek(key, 1, 60)
    assert not blocked.allowed and 55 <= blocked.retry_after <= 60
    assert (await limiter.peek(key, 2, 60)).allowed  # one more would still fit under 2


async def test_reset_forgets_the_key(limiter: RateLimiter) -> None:
    key = fresh_key()
    for _ in range(3):
        await limiter.hit(key, 2, 60)
    await limiter.reset(key)
    assert (await limiter.hit(key, 2, 60)).count == 1


async def test_a_new_window_starts_when_the_old_one_is_over(limiter: RateLimiter) -> None:
    key = fresh_key()
    assert (await limiter.hit(key, 1, 1)).allowed
    assert not (await limiter.hit(key, 1, 1)).allowed
    await asyncio.sleep(1.2)
    assert (await limiter.peek(key, 1, 1)).allowed
    again = await limiter.hit(key, 1, 1)
    assert again.allowed and again.count == 1


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    """The atomic step under real contention (a pool of connections, or Redis)."""
    key = fresh_key()
    decisions = await asyncio.gather(*(limiter.hit(key, 10, 60) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.count for d in decisions) == list(range(1, 41))


async def test_concurrent_hits_across_separate_engines(settings: Settings) -> None:
    """Two app processes each have their own engine; they share only the database."""
    engines = [Database(settings.resolved_database_url) for _ in range(2)]
    try:
        limiters = [DatabaseRateLimiter(e.engine) for e in engines]
        key = fresh_key()
        decisions = await asyncio.gather(*(limiters[i % 2].hit(key, 7, 60) for i in range(30)))
        assert sum(d.allowed for d in decisions) == 7
        assert max(d.count for d in decisions) == 30
    finally:
        for e in engines:
            await e.dispose()


async def test_database_window_restarts_after_expiry_even_with_old_rows(db: Database) -> None:
    limiter = DatabaseRateLimiter(db.engine)
    key = fresh_key()
    for _ in range(3):
        await limiter.hit(key, 2, 300)
    async with db.session() as session:
        await session.execute(
            update(RateCounter)
            .where(RateCounter.key == key)
            .values(window_start=utcnow() - timedelta(seconds=301))
        )
    decision = await limiter.hit(key, 2, 300)
    assert decision.allowed and decision.count == 1


async def test_housekeeping_drops_old_counters_only(db: Database) -> None:
    limiter = DatabaseRateLimiter(db.engine)
    old, new = fresh_key(), fresh_key()
    await limiter.hit(old, 5, 60)
    await limiter.hit(new, 5, 60)
    async with db.session() as session:
        await session.execute(
            update(RateCounter)
            .where(RateCounter.key == old)
            .values(window_start=utcnow() - timedelta(days=2))
        )
    assert (await housekeeping.purge(db))["rate counters"] >= 1
    async with db.session() as session:
        keys = set(await session.scalars(select(RateCounter.key)))
    assert new in keys and old not in keys


async def test_long_keys_fit_the_column(limiter: RateLimiter) -> None:
    key = "k" * (MAX_KEY_LENGTH + 50)
    assert len(storage_key(key)) <= MAX_KEY_LENGTH
    assert (await limiter.hit(key, 1, 60)).allowed
    assert not (await limiter.hit(key, 1, 60)).allowed
    await limiter.reset(key)


async def test_the_backend_follows_the_settings(settings: Settings, db: Database) -> None:
    assert isinstance(rate_limiter(settings, db), DatabaseRateLimiter)
    with_redis = rate_limiter(settings.model_copy(update={"redis_url": REDIS_URL}), db)
    assert isinstance(with_redis, RedisRateLimiter)
    await with_redis.aclose()
