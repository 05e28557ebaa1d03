"""felles.driver_pool against a real PostgreSQL: the bound holds, waiters are served in
order, a cancelled waiter loses no connection, and a broken connection is replaced
while one that only saw a server-reported error is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from felles.driver_pool import DriverPool
from tests.conftest import BACKEND, PG_ADMIN_URL

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="a pool of PostgreSQL connections")


@pytest.fixture
async def pool() -> AsyncIterator[DriverPool]:
    made = DriverPool(PG_ADMIN_URL, size=2)
    yield made
    await made.close()


async def backend_pid(pool: DriverPool) -> int:
    async with pool.connection() as connection:
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def test_never_more_than_size_connections(pool: DriverPool) -> None:
    busy = 0
    most = 0

    async def query() -> None:
        nonlocal busy, most
        async with pool.connection() as connection:
            busy += 1
            most = max(most, busy)
            await connection.fetchval("SELECT pg_sleep(0.01)")
            busy -= 1

    await asyncio.gather(*(query() for _ in range(20)))
    assert most == 2
    assert pool.open_connections == 2


async def test_waiters_are_served_first_come_first_served(pool: DriverPool) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    order: list[int] = []

    async def wait(n: int) -> None:
        connection = await pool.acquire()
        order.append(n)
        pool.release(connection)

    waiting = [asyncio.create_task(wait(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == []  # all five wait for the two held connections
    for connection in held:
        pool.release(connection)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2, 3, 4]


async def test_a_cancelled_waiter_loses_no_connection(pool: DriverPool) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(held.pop())  # handed to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    pool.release(held.pop())
    # Both connections are back: two can be held at once without opening a third.
    both = [await asyncio.wait_for(pool.acquire(), 1), await asyncio.wait_for(pool.acquire(), 1)]
    assert pool.open_connections == 2
    for connection in both:
        pool.release(connection)


async def test_a_server_error_keeps_the_connection(pool: DriverPool) -> None:
    first = await backend_pid(pool)
    with pytest.raises(asyncpg.UndefinedTableError):
        async with pool.connection() as connection:
            await connection.fetchval("SELECT * FROM no_such_table")
    assert await backend_pid(pool) == first
    assert pool.open_connections == 1


async def test_a_broken_connection_is_replaced(pool: DriverPool) -> None:
    victim = await backend_pid(pool)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
    finally:
        await admin.close()
    await asyncio.sleep(0.05)
    with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresError, OSError)):
        async with pool.connection() as connection:  # the terminated one: fails once
            await connection.fetchval("SELECT 1")
    assert await backend_pid(pool) != victim  # a new connection took its place
    assert pool.open_connections == 1


async def test_a_waiter_gets_a_fresh_connection_when_a_broken_one_is_retired(
    pool: DriverPool,
) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(held.pop(), broken=True)  # frees a slot, not a connection
    fresh = await asyncio.wait_for(waiter, 5)
    assert await fresh.fetchval("SELECT 1") == 1
    assert pool.open_connections == 2
    pool.release(fresh)
    pool.release(held.pop())


async def test_closed_pool_refuses_and_wakes_waiters(pool: DriverPool) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await waiter
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()
    for connection in held:
        pool.release(connection)  # released after close: terminated, not kept
    assert pool.open_connections == 0
