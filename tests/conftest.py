"""Shared fixtures. The suite runs once per database backend:

    FELLES_TEST_BACKEND=sqlite      (default) a SQLite file in a temporary folder
    FELLES_TEST_BACKEND=postgresql  a fresh database on the local PostgreSQL, dropped after

Outside CI an unreachable PostgreSQL skips that run with a message; under CI=true it fails.
The session database is seeded once with a small synthetic country; tests that write
make their own rows and never assume an empty database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from felles.app import create_app
from felles.config import Environment, Settings
from felles.db import Database
from tests.processes import children, left_running
from tests.web.browser import Site, browser_fixture

if TYPE_CHECKING:
    from playwright.async_api import Browser

BACKEND = os.environ.get("FELLES_TEST_BACKEND", "sqlite")
PG_ADMIN_URL = os.environ.get("FELLES_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEMO_PERSONS = 300
DEMO_SEED = 7


def pytest_report_header() -> str:
    return f"felles database backend: {BACKEND}"


def _pg_connect(autocommit: bool = True):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=autocommit, connect_timeout=3)


def pytest_sessionstart(session: pytest.Session) -> None:
    if BACKEND != "postgresql":
        return
    try:
        _pg_connect().close()
    except Exception as exc:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc})".strip()
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(message + "; CI requires it.") from exc
        pytest.exit(message + ": skipping the PostgreSQL run.", returncode=0)


@contextlib.contextmanager
def scratch_database(folder: Path, label: str = "felles") -> Iterator[str]:
    """A new, empty database on this run's backend, removed afterwards: a SQLite file in
    `folder`, or a freshly created PostgreSQL database."""
    if BACKEND != "postgresql":
        yield f"sqlite+aiosqlite:///{folder / f'{label}.db'}"
        return
    name = f"{label}_test_{os.getpid()}_{secrets.token_hex(3)}"
    with _pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        env=Environment.test,
        data_dir=data_dir,
        database_url=database_url,
        base_url="http://testserver",
        demo_persons=DEMO_PERSONS,
        demo_seed=DEMO_SEED,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The session's database, migrated and seeded with a small synthetic country."""
    from felles.demo.service import seed_if_empty
    from felles.portal.demo import publish_examples

    database = Database(settings.resolved_database_url)
    await database.upgrade()
    await seed_if_empty(database, persons=DEMO_PERSONS, seed=DEMO_SEED)
    await publish_examples(database)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An HTTP client talking to the app in-process (no network, same code path)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def felles_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for running the real `felles` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FELLES_")}
    env.update(
        FELLES_ENV="test",
        FELLES_DATA_DIR=str(settings.data_dir),
        FELLES_DATABASE_URL=settings.resolved_database_url,
        FELLES_DEMO_PERSONS=str(DEMO_PERSONS),
        FELLES_DEMO_SEED=str(DEMO_SEED),
    )
    env.update(extra)
    return env


def felles_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "felles", *args]


def run_felles(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `felles` command against the test database; output captured."""
    return subprocess.run(
        felles_command(*args),
        env=felles_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def serving(settings: Settings, *, host: str = "127.0.0.1", **env: str) -> Iterator[str]:
    """`felles serve --demo` on a free port; yields its base URL (`http://<host>:<port>`,
    which is also its FELLES_BASE_URL: WebAuthn tests need `localhost`)."""
    port = free_port()
    base_url = f"http://{host}:{port}"
    log_path = settings.data_dir / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            felles_command("serve", "--demo", "--port", str(port)),
            # Events, receipt PDFs and mail notifications are made by the tests' own
            # workers, not in the background, so tests that count them see only their own;
            # nor does the server purge expired rows behind the tests' backs (on SQLite a
            # purge is another writer, at a moment nobody chose).
            env=felles_env(
                settings,
                FELLES_BASE_URL=base_url,
                **{
                    "FELLES_EVENTS_DISPATCH": "false",
                    "FELLES_RECEIPTS_SECONDS": "0",
                    "FELLES_MAILBOX_SECONDS": "0",
                    "FELLES_PURGE_MINUTES": "0",
                    **env,
                },
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise RuntimeError("felles serve did not start in 60 s")
            yield base_url
        finally:
            started = children(process.pid)  # receipt renderers, resource tracker
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            assert left_running(started) == [], "felles serve left processes running"


@pytest.fixture(scope="session", autouse=True)
def receipt_renderers() -> Iterator[None]:
    """Tests that render receipts in this process start the renderers' pool; stop it
    before the interpreter tears down the modules it needs to stop."""
    yield
    from felles.portal import receipts

    receipts.shutdown_pool()


@pytest.fixture(scope="session")
def live_server(settings: Settings, db: Database) -> Iterator[str]:
    """The real `felles serve --demo` over real HTTP on a free port, for browser tests."""
    with serving(settings) as base_url:
        yield base_url


# One headless Chromium for the whole session (skips, or fails under CI, without it).
browser = browser_fixture()


@pytest.fixture(scope="session")
async def site(browser: Browser, live_server: str) -> AsyncIterator[Site]:
    """`live_server` in that browser: one context per language (holding the language
    cookie) shared across tests; every test gets fresh pages, closed when it ends."""
    shared = Site(browser=browser, base_url=live_server)
    yield shared
    await shared.close()
