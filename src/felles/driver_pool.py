"""A lean pool of plain asyncpg connections for hot single-statement work.

asyncpg's own pool spends about 50 µs of CPU on each acquire and release (timeouts,
shielding, holder bookkeeping, a reset hook): more than the round trip of a short
statement. The driver pool only ever runs single autocommit statements, so a
connection comes back clean or broken, nothing in between. That lets this pool be a
stack of idle connections and a queue of waiters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]

Init = Callable[[asyncpg.Connection], Awaitable[None]]


class DriverPool:
    """At most `size` connections, opened on demand; waiters served first come, first
    served. A connection that failed in any way other than a server-reported error is
    terminated rather than reused."""

    def __init__(self, dsn: str, *, size: int, init: Init | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self.dsn = dsn
        self.size = size
        self._init = init
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    async def _connect(self) -> asyncpg.Connection:
        self._open += 1
        try:
            connection = await asyncpg.connect(self.dsn)
            if self._init is not None:
                await self._init(connection)
        except BaseException:
            self._open -= 1
            self._wake_one(None)  # the slot is free again for someone waiting
            raise
        return connection

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the driver pool is closed")
        while True:
            if self._idle:
                return self._idle.pop()
            if self._open < self.size:
                return await self._connect()
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())  # handed over as we were cancelled
                raise
            if handed is not None:
                return handed
            # None: a slot was freed (a broken connection went away); open one.

    def release(self, connection: asyncpg.Connection, *, broken: bool = False) -> None:
        if broken or self._closed or connection.is_closed():
            connection.terminate()
            self._open -= 1
            self._wake_one(None)
            return
        self._pass_on(connection)

    def _pass_on(self, connection: asyncpg.Connection | None) -> None:
        """Give a connection (or a free slot, None) to the first live waiter."""
        if not self._wake_one(connection) and connection is not None:
            self._idle.append(connection)

    def _wake_one(self, handed: asyncpg.Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one statement; an error the server reported leaves it
        usable (autocommit: nothing is left open), anything else retires it."""
        connection = await self.acquire()
        try:
            yield connection
        except asyncpg.PostgresError:
            self.release(connection)
            raise
        except BaseException:
            self.release(connection, broken=True)
            raise
        self.release(connection)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the driver pool is closed"))
        self._waiters.clear()
        for connection in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()
