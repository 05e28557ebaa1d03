"""Fixtures for events: a real HTTP receiver in a thread, a clock tests move by hand, and
dispatchers over the session's database."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cloudevents.core.bindings import http as ce_http
from standardwebhooks import Webhook

from felles.db import Database
from felles.events import service
from felles.events.dispatcher import Dispatcher
from felles.events.webhooks import SecretBox
from felles.registry.numbers import synthetic_orgnr

rng = random.Random()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    event: Any  # the CloudEvent as the cloudevents SDK parsed it
    payload: Any  # the JSON body, as standardwebhooks verified it


@dataclass
class Receiver:
    """Answers POSTs with the scripted answers in turn (an int: that status; a float:
    sleep that long, then 200), 200 when the script runs out; verifies and keeps each."""

    url: str = ""
    secret: str | None = None
    script: list[int | float] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            step = self.script.pop(0) if self.script else 200
        try:
            assert self.secret is not None
            payload = Webhook(self.secret).verify(body, headers)
            event = ce_http.from_http_event(ce_http.HTTPMessage(headers=headers, body=body))
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return 400
        if isinstance(step, float):
            time.sleep(step)
            step = 200
        with self.lock:
            self.received.append(Received(headers, body, event, payload))
        return step

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = target.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org() -> str:
    """An organisation of this test alone, so tests never see each other's events."""
    return synthetic_orgnr(rng)


@pytest.fixture
def box(app: Any) -> SecretBox:
    box: SecretBox = app.state.events.box
    return box


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def dispatchers(db: Database, box: SecretBox, clock: Clock) -> AsyncIterator[Any]:
    """Makes dispatchers on the session database with the test's clock; closes them."""
    made: list[Dispatcher] = []

    def make(database: Database | None = None, **options: Any) -> Dispatcher:
        options.setdefault("clock", clock)
        options.setdefault("sleep", no_sleep)
        options.setdefault("jitter", lambda ceiling: ceiling)  # no randomness in tests
        made.append(Dispatcher(database or db, box, **options))
        return made[-1]

    yield make
    for dispatcher in made:
        await dispatcher.aclose()


@pytest.fixture
async def subscribe(db: Database, box: SecretBox) -> AsyncIterator[Any]:
    """Subscribes a receiver for an organisation; removes the subscriptions afterwards, so
    later tests' dispatchers do not try the receiver after it has gone."""
    made: list[tuple[str, str]] = []

    async def make(org: str, receiver: Receiver, types: list[str] | None = None) -> str:
        async with db.session() as session:
            record, secret = await service.add_subscription(
                session, org, receiver.url, types or ["no.felles.test."], box=box, local_http=True
            )
        receiver.secret = secret
        made.append((org, record.id))
        return record.id

    yield make
    async with db.session() as session:
        for orgnr, sub_id in made:
            with contextlib.suppress(service.NotFound):
                await service.delete_subscription(session, orgnr, sub_id)


async def emit_many(
    db: Database, org: str, count: int, type: str = "no.felles.test.thing"
) -> list[str]:
    async with db.session() as session:
        return [
            await service.emit(
                session,
                type=type,
                source="/test",
                subject=f"thing-{i}",
                recipient_orgnr=org,
                data={"n": i},
            )
            for i in range(count)
        ]
