"""Database access: one async engine per process, sessions per unit of work, migrations."""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

import anyio
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    JSON,
    ColumnElement,
    Delete,
    Executable,
    Insert,
    MetaData,
    Select,
    Table,
    Update,
    bindparam,
    event,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect, Result
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from felles.driver_pool import DriverPool

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every part's tables share one metadata so Alembic sees them all."""

    metadata = MetaData(naming_convention=NAMING)


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached; the message says how to fix it."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


_DIRECT = "felles.direct"  # session.info key: the Database whose driver pool to use


def _asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from SQLAlchemy's URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _json_codecs(connection: asyncpg.Connection) -> None:
    """JSON in and out as SQLAlchemy's asyncpg dialect does it (binds arrive as text,
    serialised by the column type's bind processor)."""
    await connection.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=lambda data: json.loads(data.decode()),
        schema="pg_catalog",
        format="binary",
    )
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: json.loads(data[1:].decode()),
        schema="pg_catalog",
        format="binary",
    )


class Database:
    """The engine and session factory for one database URL."""

    def __init__(self, url: str, *, connections: int = 20, pooled: bool = True) -> None:
        """`connections`: at most this many PostgreSQL connections in each of the two
        pools (SQLAlchemy's, and the driver pool for hot statements). `pooled=False`
        (SQLite): every session opens and closes its own connection, for callers that
        drive the app from short-lived event loops (a pooled aiosqlite connection
        belongs to the loop that opened it)."""
        self.url = url
        self.connections = connections
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 10}
            if not pooled:
                kwargs["poolclass"] = NullPool
        else:
            # No pre-ping (a round trip per checkout); a dropped connection fails one
            # request and is replaced. The pool covers a worker's usual concurrency.
            # Hot requests use the driver pool below; these serve everything else.
            half = max(connections // 2, 1)
            kwargs.update(pool_size=half, max_overflow=connections - half, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Each statement its own transaction: no BEGIN and COMMIT round trips. Only for
        # units of work whose writes are one statement (see `write_together`). SQLite is
        # in-process, where a transaction costs no round trip, so it keeps them.
        self.autocommit_sessions = (
            self.sessions
            if self.is_sqlite
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )
        # On asyncpg, autocommit sessions run prebuilt hot statements on a pool of plain
        # asyncpg connections (see `fetch_row`), past SQLAlchemy's session machinery.
        self.direct = self.engine.dialect.driver == "asyncpg"
        self._pool: DriverPool | None = None

    @asynccontextmanager
    async def session(self, *, autocommit: bool = False) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block ends cleanly and rolls back otherwise.

        With `autocommit=True` (PostgreSQL) every statement commits by itself: for hot
        requests whose statements are each complete on their own. A session that never
        touched the database (its statements all went straight to the driver) costs
        nothing to end.
        """
        session = (self.autocommit_sessions if autocommit else self.sessions)()
        if autocommit and self.direct:
            session.info[_DIRECT] = self
        try:
            yield session
            if session.in_transaction() or session.new or session.dirty or session.deleted:
                await session.commit()
        except BaseException:
            # Rolls back what is open and returns the connection, shielded so that a
            # cancelled request (a client gone, a timeout) cannot interrupt the close and
            # leave a transaction open (on SQLite, the write lock held) until the garbage
            # collector finds the connection.
            with anyio.CancelScope(shield=True):
                await session.close()
            raise

    def driver_pool(self) -> DriverPool:
        """The pool of plain asyncpg connections (each opened on first use)."""
        if self._pool is None:
            self._pool = DriverPool(
                _asyncpg_dsn(self.url), size=self.connections, init=_json_codecs
            )
        return self._pool

    async def ping(self) -> None:
        """Raise DatabaseUnavailable with a plain explanation when the database is down."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable(describe_connection_error(self.url, exc)) from exc

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        await self.ping()
        async with self.engine.begin() as conn:
            await conn.run_sync(run_migrations)

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()


def leasing(
    key: Any,
    *,
    due: Any,
    attempts: Any,
    now: datetime,
    until: datetime,
    limit: int,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
) -> Update:
    """The UPDATE that leases up to `limit` rows due by `now` (and `where`), oldest
    first: `due` moves to `until` and `attempts` goes up by one, so rows a worker dies
    holding fall due again when the lease runs out, with no sweeper. On PostgreSQL rows
    another worker is leasing are skipped (SQLite has one writer anyway). `key`, `due`
    and `attempts` are the model's columns; add `.returning(...)` for what the worker
    needs."""
    chosen = (
        select(key)
        .where(due <= now, *where)
        .order_by(*(order_by or (due,)))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(key.class_)
        .where(key.in_(chosen.scalar_subquery()))
        .values({due.key: until, attempts.key: attempts + 1})
        .execution_options(synchronize_session=False)
    )


async def insert_row(session: AsyncSession, model: type[Base], **values: Any) -> None:
    """One INSERT past the ORM's unit of work (through `write_together`).

    For hot paths that write rows they do not read back in the same transaction: the
    unit of work's bookkeeping at commit costs more than the statement itself.
    """
    await write_together(session, NewRow(model, values))


COPY_FROM = 50


async def insert_many(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert many rows with the same keys, in the session's transaction.

    From `COPY_FROM` rows on asyncpg through COPY (binary): several times faster than a
    multi-row INSERT, and SQLAlchemy's per-value processing is skipped (JSON columns are
    serialised here). Otherwise one executemany INSERT (COPY first asks the table's
    column types: a round trip more than a few rows are worth). A constraint violation
    raises IntegrityError either way, and the transaction is then to be rolled back.
    """
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.driver != "asyncpg" or len(rows) < COPY_FROM:
        await connection.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    # One C call per row; itemgetter of one name gives the value, not a 1-tuple.
    pick: Callable[[Mapping[str, Any]], Any] = (
        operator.itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    )
    as_json = [i for i, n in enumerate(names) if isinstance(table.c[n].type, JSON)]
    records: list[Any] = []
    for row in rows:
        values = pick(row)
        if as_json:
            values = list(values)
            for i in as_json:
                values[i] = json.dumps(values[i])
        records.append(values)
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")  # SQLAlchemy begins its transaction
    try:
        await driver.copy_records_to_table(table.name, records=records, columns=names)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    except asyncpg.DataError as exc:
        raise DataError(f"COPY {table.name}", None, exc) from exc


# --- Hot statements straight on the driver -------------------------------------------
#
# A prebuilt Core statement run through SQLAlchemy's execution machinery (and the
# session around it) costs more Python than the round trip to PostgreSQL itself. In an
# autocommit session on asyncpg (no transaction to keep together), the functions below
# run the statement, compiled once by SQLAlchemy, on a pooled plain asyncpg connection:
# same SQL, same bound values (through SQLAlchemy's own bind processors), same JSON
# codecs. Anywhere else they go through the session as usual.


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bound parameters, in $1, $2, ... order
    fixed: dict[str, Any]  # values of the statement's own literals
    processors: dict[str, Any]


_COMPILED: dict[Executable, _Compiled] = {}
# Hot statements are prebuilt module-level objects: a handful. More than this means a
# caller builds statements per call; forget them rather than grow without bound.
_MAX_COMPILED = 512


def _compiled(statement: Executable, dialect: Dialect) -> _Compiled:
    found = _COMPILED.get(statement)
    if found is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        fixed = {n: binds[n].effective_value for n in names if not binds[n].required}
        processors = dict(compiled._bind_processors)
        found = _COMPILED[statement] = _Compiled(compiled.string, names, fixed, processors)
    return found


def dialect_name(session: AsyncSession) -> str:
    """The session's dialect ("postgresql", "sqlite"), without checking out a connection."""
    bind = session.bind
    return bind.dialect.name if bind is not None else ""


@asynccontextmanager
async def _on_driver(db: Database, sql: str) -> AsyncIterator[asyncpg.Connection]:
    """A driver connection; its errors come out as SQLAlchemy's, as on the other path."""
    try:
        async with db.driver_pool().connection() as connection:
            yield connection
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except asyncpg.DataError as exc:
        raise DataError(sql, None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DBAPIError(sql, None, exc) from exc


def _direct(session: AsyncSession) -> Database | None:
    """The database whose driver pool this session's hot statements may use."""
    return session.info.get(_DIRECT)


def _arguments(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    values = []
    for name in compiled.names:
        value = params[name] if name in params else compiled.fixed[name]
        processor = compiled.processors.get(name)
        values.append(processor(value) if processor is not None and value is not None else value)
    return values


async def _run(
    session: AsyncSession,
    statement: Executable,
    params: Mapping[str, Any],
    on_driver: Callable[..., Awaitable[Any]],
    on_session: Callable[[Result[Any]], Any],
) -> Any:
    """Run a prebuilt statement straight on the driver (`on_driver`, e.g.
    `asyncpg.Connection.fetchrow`) when the session allows, else through the session
    (`on_session` takes the result apart)."""
    db = _direct(session)
    if db is None:
        connection = await session.connection()
        return on_session(await connection.execute(statement, dict(params)))
    compiled = _compiled(statement, db.engine.dialect)
    async with _on_driver(db, compiled.sql) as driver:
        return await on_driver(driver, compiled.sql, *_arguments(compiled, params))


def _first_row(result: Result[Any]) -> Mapping[str, Any] | None:
    row = result.first()
    return None if row is None else cast(Mapping[str, Any], row._mapping)


async def fetch_row(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The first row of a prebuilt statement (by column name), or None."""
    return await _run(session, statement, params, asyncpg.Connection.fetchrow, _first_row)  # type: ignore[no-any-return]


async def fetch_value(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> Any:
    """The first column of the first row of a prebuilt statement, or None."""
    return await _run(session, statement, params, asyncpg.Connection.fetchval, Result.scalar)


async def _column(connection: asyncpg.Connection, sql: str, *arguments: Any) -> list[Any]:
    return [row[0] for row in await connection.fetch(sql, *arguments)]


async def fetch_values(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    """The first column of every row of a prebuilt statement."""
    return await _run(  # type: ignore[no-any-return]
        session, statement, params, _column, lambda result: list(result.scalars().all())
    )


async def execute(session: AsyncSession, statement: Executable, params: Mapping[str, Any]) -> None:
    """Run a prebuilt statement for its effect."""
    await _run(session, statement, params, asyncpg.Connection.execute, lambda _result: None)


@dataclass(frozen=True, slots=True)
class NewRow:
    """One row to insert, for `write_together` (see `row_insert`)."""

    model: type[Base]
    values: dict[str, Any]


Write = NewRow | Insert | Update | Delete


def row_insert(model: type[Base], **values: Any) -> NewRow:
    """The INSERT of one row, for `write_together`."""
    return NewRow(model, values)


async def write_together(session: AsyncSession, *writes: Write) -> None:
    """Several writes that belong together, in one round trip where the database allows.

    On PostgreSQL they become data-modifying CTEs of one statement, so they commit or
    fail together even outside a transaction and cost one round trip instead of one
    each; elsewhere they run one by one in the session's transaction. The writes must
    not depend on each other's effects (all CTEs see the same snapshot). Rows only
    (the usual case) make a statement built once per shape, with bound parameters.
    """
    if dialect_name(session) == "postgresql":
        if all(isinstance(w, NewRow) for w in writes):
            rows = cast(tuple[NewRow, ...], writes)
            shape = tuple((row.model, tuple(row.values)) for row in rows)
            params = {
                f"w{i}_{key}": value
                for i, row in enumerate(rows)
                for key, value in row.values.items()
            }
            await execute(session, _inserts_together(shape), params)
            return
        if len(writes) > 1:
            ctes = [_statement(w).cte(f"w{i}") for i, w in enumerate(writes)]
            await (await session.connection()).execute(select(literal(1)).add_cte(*ctes))
            return
    connection = await session.connection()
    for write in writes:
        if isinstance(write, NewRow):
            await connection.execute(_insert_of(write.model), [write.values])
        else:
            await connection.execute(write)


def _statement(write: Write) -> Insert | Update | Delete:
    return _insert_of(write.model).values(**write.values) if isinstance(write, NewRow) else write


@cache
def _inserts_together(shape: tuple[tuple[type[Base], tuple[str, ...]], ...]) -> Select[Any]:
    """One statement inserting a row into each table, bound as `w{i}_{column}`."""
    ctes = []
    for i, (model, keys) in enumerate(shape):
        table = cast(Table, model.__table__)
        values = {key: bindparam(f"w{i}_{key}", type_=table.c[key].type) for key in keys}
        ctes.append(insert(table).values(values).cte(f"w{i}"))
    return select(literal(1)).add_cte(*ctes)


@cache
def _insert_of(model: type[Base]) -> Insert:
    """The INSERT construct of a table, built once (statements are immutable)."""
    return insert(model.__table__)  # type: ignore[arg-type]


def run_migrations(connection: Connection, revision: str = "head") -> None:
    """Run Alembic on an open connection (migrations ship inside the package)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def safe_url(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def describe_connection_error(url: str, exc: Exception) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc) else ""
    return (
        f"Cannot reach the database at {safe_url(url)} ({reason}). "
        "Check that it is running and that FELLES_DATABASE_URL is right."
    )
