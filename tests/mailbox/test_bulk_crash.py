"""A 100,000-letter batch survives SIGKILL: first the real `felles mailbox send-batch`
is killed while storing, then the real `felles worker` while delivering; each is run
again, and in the end every line of the file is one letter, delivered exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select

from felles.config import Environment, Settings
from felles.db import Database
from felles.demo.service import seed_if_empty
from felles.events.models import OutboxEvent
from felles.mailbox.models import Batch, Letter, LetterContent, Notification
from felles.registry.models import Person
from tests.conftest import DEMO_PERSONS, DEMO_SEED, felles_command, felles_env, scratch_database
from tests.mailbox.mail import pdf

LETTERS = 100_000
REFERENCE = "crash-test"


def write_mailing(folder: Path, pids: list[str]) -> Path:
    """The mailing: documents by path (a few PDFs shared, as mailings do)."""
    for n in range(5):
        (folder / f"letter-{n}.pdf").write_bytes(pdf(f"Brev nummer {n}"))
    file = folder / "mailing.jsonl"
    with file.open("w") as out:
        for line in range(LETTERS):
            out.write(
                json.dumps(
                    {
                        "recipient": pids[line % len(pids)],
                        "title": "Årsoppgave",
                        "sender_ref": f"line-{line}",
                        "document": {"name": "brev.pdf", "path": f"letter-{line % 5}.pdf"},
                    }
                )
                + "\n"
            )
    return file


def start(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            felles_command(*args),
            env=felles_env(settings, FELLES_MAILBOX_SECONDS="0.2", FELLES_EVENTS_DISPATCH="false"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: SIGKILL reaches the sealing processes
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


async def wait_until(
    check: Callable[[], Awaitable[bool]], process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 600
    while not await check():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_killed_mailing_resumes_and_delivers_every_letter_exactly_once(
    tmp_path: Path,
) -> None:
    with scratch_database(tmp_path, "crash") as url:
        settings = Settings(
            env=Environment.test,
            data_dir=tmp_path / "var",
            database_url=url,
            demo_persons=DEMO_PERSONS,
            demo_seed=DEMO_SEED,
        )
        db = Database(settings.resolved_database_url)
        try:
            await db.upgrade()
            await seed_if_empty(db, persons=DEMO_PERSONS, seed=DEMO_SEED)
            async with db.session() as session:
                pids = list(
                    await session.scalars(select(Person.pid).where(Person.deceased_on.is_(None)))
                )
            file = write_mailing(tmp_path, pids)
            await run_the_mailing(settings, db, file, tmp_path / "felles.log")
        finally:
            await db.dispose()


async def count(db: Database, *where: object, model: type = Letter) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def run_the_mailing(settings: Settings, db: Database, file: Path, log: Path) -> None:
    send = ("mailbox", "send-batch", str(file), "--sender", "nav", "--reference", REFERENCE)

    # 1. Storing: killed with about a fifth stored.
    sending = start(settings, log, *send, "--no-commit")
    await wait_until(lambda: _at_least(db, LETTERS // 5), sending, log)
    kill(sending)
    stored_before = await count(db)
    assert 0 < stored_before < LETTERS

    # Run again: it goes on after the last stored line.
    again = start(settings, log, *send, "--no-commit")
    assert again.wait(600) == 0, log.read_text()[-3000:]
    assert "Went on from line" in log.read_text()
    async with db.session() as session:
        seqs = await session.execute(
            select(func.count(), func.count(func.distinct(Letter.seq)), func.min(Letter.seq),
                   func.max(Letter.seq))
        )  # fmt: skip
        assert tuple(seqs.one()) == (LETTERS, LETTERS, 0, LETTERS - 1)
        batch = await session.scalar(select(Batch).where(Batch.reference == REFERENCE))
        assert batch is not None and batch.status == "open" and batch.letters == LETTERS
    assert await count(db, Letter.status == "accepted") == LETTERS

    # 2. Delivering: commit, and kill the worker part-way through releasing.
    committing = start(settings, log, *send)  # everything stored: commits and releases
    await wait_until(lambda: _delivered_at_least(db, 1), committing, log)
    kill(committing)
    worker = start(settings, log, "worker")
    await wait_until(lambda: _delivered_at_least(db, LETTERS // 3), worker, log)
    kill(worker)
    assert await count(db, Letter.status == "delivered") < LETTERS
    worker = start(settings, log, "worker")
    try:
        await wait_until(lambda: _released(db), worker, log)
    finally:
        kill(worker)

    # Every line is one letter, delivered once, with its notifications due once.
    assert await count(db) == LETTERS
    assert await count(db, Letter.status == "accepted") == 0
    digital = await count(db, Letter.channel == "digital")
    assert await count(db, Letter.channel == "print") + digital == LETTERS
    assert await count(db, model=LetterContent) == LETTERS
    async with db.session() as session:
        told = await session.scalar(select(func.count(func.distinct(Notification.letter_id))))
        assert told + await count(db, Letter.notification_failed) == digital, (
            "every digital letter has its notifications, or its sender hears why not"
        )
        duplicates = await session.scalar(
            select(func.count()).select_from(
                select(Notification.letter_id)
                .group_by(Notification.letter_id, Notification.channel, Notification.repetition)
                .having(func.count() > 1)
                .subquery()
            )
        )
        assert duplicates == 0
        released = await session.scalars(
            select(OutboxEvent.data).where(OutboxEvent.type == "no.felles.mailbox.batch.released")
        )
        (event,) = list(released)
        assert sum(event["letters"].values()) == LETTERS


async def _at_least(db: Database, n: int) -> bool:
    return await count(db) >= n


async def _delivered_at_least(db: Database, n: int) -> bool:
    return await count(db, Letter.status == "delivered") >= n


async def _released(db: Database) -> bool:
    async with db.session() as session:
        status = await session.scalar(select(Batch.status).where(Batch.reference == REFERENCE))
    return status == "released"
