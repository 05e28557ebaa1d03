"""What every part's command line shares: one clear error line, the settings, the database.

Kept apart from `felles.cli` so a part's cli.py can import it while `felles.cli` is
still registering the parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError

from felles.config import Settings, get_settings
from felles.db import Database, DatabaseUnavailable
from felles.registry.numbers import InvalidNumber
from felles.web.keys import DataDirError, ensure_data_dir

T = TypeVar("T")

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, never a traceback."""
    err.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine and turn the errors people cause into one line each."""
    try:
        return asyncio.run(coro)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    except DataDirError as exc:
        fail(str(exc))
    except InvalidNumber as exc:
        fail(f"{exc}.", code=2)
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        if "no such table" in reason or "does not exist" in reason:
            fail("The database has no Felles tables yet. Run `felles db upgrade` first.")
        fail(f"The database refused the request: {reason}")


def settings() -> Settings:
    try:
        value = get_settings()
        ensure_data_dir(value.data_dir)
    except DataDirError as exc:
        fail(str(exc))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        fail(f"The configuration is not valid: {exc}".splitlines()[0])
    return value


async def with_database(settings: Settings, work: Any) -> Any:
    """Open the configured database, check it answers, run `work(db)`, close it."""
    db = Database(settings.resolved_database_url, connections=settings.db_connections)
    try:
        await db.ping()
        return await work(db)
    finally:
        await db.dispose()
