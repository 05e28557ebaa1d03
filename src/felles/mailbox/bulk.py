"""Sending a bulk mailing from JSON Lines: tens of millions of letters, resumable.

Each line is one letter, as in the API (`recipient`, `title`, `document`, ...), where a
document gives either `content_base64` or a `path` relative to the file. Lines go in
chunks: the registers are read once per chunk, the letters are sealed in worker
processes (one per core) while the chunks before are being stored, and each chunk is
stored in one transaction, in order. So after a crash the batch holds exactly the
lines before some point, and running the same command again goes on from there: no
letter lost, none stored twice. A line that cannot be sent (an invalid number, a
person nobody has, a document that is not a PDF) is written to a rejects file with its
line number and the reason, and the rest go on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from felles.db import Database
from felles.mailbox import batches
from felles.mailbox import letters as L
from felles.mailbox.sending import sender_name
from felles.process_pool import process_pool
from felles.registry.numbers import InvalidNumber, parse_pid

CHUNK = 1_000
PROCESSES = max(1, os.cpu_count() or 1)
# Chunks stored at once on PostgreSQL: while one transaction waits for the server, the
# next is being written (one at a time left the machine half idle).
STORERS = 3


class BulkDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=L.MAX_NAME)
    type: Literal["application/pdf"] = "application/pdf"
    content_base64: str | None = None
    path: str | None = None


class BulkLetter(BaseModel):
    """One line of the file: the API's letter, with documents by path allowed."""

    model_config = ConfigDict(extra="forbid")

    recipient: str
    title: str = Field(min_length=1, max_length=L.MAX_TITLE)
    document: BulkDocument
    attachments: list[BulkDocument] = Field(default_factory=list, max_length=L.MAX_ATTACHMENTS)
    sender_ref: str | None = Field(None, max_length=200)
    sensitivity: Literal["normal", "sensitive"] = "normal"
    notify: bool = True
    repeat_after_days: int | None = Field(7, ge=1, le=L.MAX_REPEAT_DAYS)
    print_allowed: bool = True
    visible_from: datetime | None = None


class LineRefused(ValueError):
    pass


@lru_cache(maxsize=256)
def _file(path: Path) -> bytes:
    """A document named by path (mailings often share an attachment: read it once)."""
    return path.read_bytes()


def _document(doc: BulkDocument, base: Path) -> L.Document:
    if (doc.content_base64 is None) == (doc.path is None):
        raise LineRefused("A document needs either content_base64 or path")
    if doc.path is not None:
        try:
            return L.Document(doc.name, _file((base / doc.path).resolve()), doc.type)
        except OSError:
            raise LineRefused(f"Cannot read the document {doc.path}") from None
    try:
        return L.Document(doc.name, base64.b64decode(doc.content_base64 or "", validate=True))
    except (binascii.Error, ValueError):
        raise LineRefused("A document's content_base64 is not valid base64") from None


def parse_line(text: str, base: Path) -> L.LetterIn:
    """One line as a letter (raises `LineRefused` saying why not, never echoing the
    identity number)."""
    try:
        line = BulkLetter.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LineRefused(f"{where}: {first['msg']}" if where else first["msg"]) from None
    try:
        pid = parse_pid(line.recipient).value
    except InvalidNumber:
        raise LineRefused("recipient is not a valid national identity number") from None
    letter = L.LetterIn(
        recipient=pid,
        title=line.title,
        main=_document(line.document, base),
        attachments=tuple(_document(a, base) for a in line.attachments),
        sender_ref=line.sender_ref,
        sensitivity=line.sensitivity,
        notify=line.notify,
        repeat_after_days=line.repeat_after_days,
        print_allowed=line.print_allowed,
        visible_from=line.visible_from,
    )
    try:
        L.check(letter)
    except L.LetterRefused as refused:
        raise LineRefused(f"{refused.field}: {refused.message}") from None
    return letter


@dataclass
class Outcome:
    batch_id: str
    reference: str
    status: str
    resumed_at: int  # the first line this run stored (0 on a fresh start)
    stored: int = 0  # letters this run stored
    rejected: int = 0  # lines this run refused
    released: int = 0  # letters this run released


Progress = Callable[[str, int], None]  # (phase, how many more done)


async def send_lines(
    db: Database,
    lines: Iterable[str],
    *,
    sender_orgnr: str,
    reference: str,
    base: Path,
    commit: bool = True,
    release: bool = True,
    processes: int = PROCESSES,
    chunk: int = CHUNK,
    rejects_file: Path | None = None,
    progress: Progress = lambda phase, n: None,
) -> Outcome:
    """Store the lines not yet stored in the batch `reference` (made if new), then
    commit and release it; the lines refused, and why, go to `rejects_file` (see
    `reject_writer`). Line numbers count from 0."""
    async with db.session() as session:
        batch = await batches.find(session, sender_orgnr, reference)
        if batch is None:
            batch = await batches.create(session, sender_orgnr, reference)
        start = await batches.next_seq(session, batch.id) if batch.status == "open" else 0
        sender = await sender_name(session, sender_orgnr)
    outcome = Outcome(batch.id, reference, batch.status, start)
    if batch.status == "cancelled":
        return outcome
    if batch.status == "open":
        progress("skipped", start)
        rejects = reject_writer(rejects_file, start) if rejects_file else _no_rejects
        await _store_all(
            db,
            lines,
            batch.id,
            sender_orgnr,
            sender,
            start,
            base,
            outcome,
            processes=processes,
            chunk=chunk,
            rejects=rejects,
            progress=progress,
        )
        if not commit:
            return outcome
        async with db.session() as session:
            outcome.status = (await batches.commit(session, sender_orgnr, batch.id)).status
    if release:
        async with db.session() as session:
            progress("to_release", (await batches.get(session, sender_orgnr, batch.id)).letters)

        def released(count: int) -> None:
            outcome.released += count
            progress("released", count)

        await batches.release_all(db, on_chunk=released)
        async with db.session() as session:
            outcome.status = (await batches.get(session, sender_orgnr, batch.id)).status
    return outcome


def _chunks(
    lines: Iterable[str], start: int, size: int, base: Path, refuse: Callable[[int, str], None]
) -> Iterator[tuple[list[tuple[int, L.LetterIn]], int]]:
    """(letters, lines read) per chunk, from line `start` on."""
    items: list[tuple[int, L.LetterIn]] = []
    read = 0
    for number, text in enumerate(lines):
        if number < start:
            continue
        read += 1
        if text.strip():
            try:
                items.append((number, parse_line(text, base)))
            except LineRefused as refused:
                refuse(number, str(refused))
        if read == size:
            yield items, read
            items, read = [], 0
    if read:
        yield items, read


async def _store_all(
    db: Database,
    lines: Iterable[str],
    batch_id: str,
    sender_orgnr: str,
    sender: str,
    start: int,
    base: Path,
    outcome: Outcome,
    *,
    processes: int,
    chunk: int,
    rejects: Callable[[int, str], None],
    progress: Progress,
) -> None:
    """Parse and route chunks here while other tasks store them: the database's work
    overlaps the next chunks' parsing and sealing instead of waiting for it. On
    PostgreSQL `STORERS` chunks are written at once, each on its own connection,
    committed in order (see `batches.add_letters`)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[list[batches.Planned], asyncio.Future[Sealed], int] | None]
    queue = asyncio.Queue(maxsize=processes * 2)
    storers = 1 if db.is_sqlite else STORERS  # SQLite writes one transaction at a time

    def refuse(line: int, why: str) -> None:
        outcome.rejected += 1
        rejects(line, why)

    async def store(
        planned: list[batches.Planned],
        sealing: asyncio.Future[Sealed],
        read: int,
        after: asyncio.Task[None] | None,
    ) -> None:
        kept, sealed = [], []
        for plan, blob in zip(planned, await sealing, strict=True):
            if isinstance(blob, L.LetterRefused):
                refuse(plan[0], f"{blob.field}: {blob.message}")
            else:
                kept.append(plan)
                sealed.append(blob)
        rows = batches.prepared_rows(kept, sealed, sender_orgnr=sender_orgnr, batch_id=batch_id)
        async with db.session() as session:
            await batches.add_letters(session, batch_id, sender_orgnr, rows, after=after)
        outcome.stored += len(rows)
        progress("stored", read)

    async def store_in_order() -> None:
        running: set[asyncio.Task[None]] = set()
        last: asyncio.Task[None] | None = None
        try:
            while (item := await queue.get()) is not None:
                last = asyncio.create_task(store(*item, after=last))
                running.add(last)
                while len(running) >= storers:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # raises what stopped it
            for task in running:
                await task
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    with process_pool(processes) as pool:
        storing = asyncio.create_task(store_in_order())
        try:
            for items, read in _chunks(lines, start, chunk, base, refuse):
                async with db.session() as session:
                    planned, certs, unknown = await batches.plan(session, items)
                for line in unknown:
                    refuse(line, "recipient: nobody in the population register has this number")
                sealing = loop.run_in_executor(
                    pool,
                    L.sealed_many,
                    [(letter, i, r, w) for _, letter, i, r, w in planned],
                    sender,
                    certs,
                )
                await _put(queue, (planned, sealing, read), storing)
            await _put(queue, None, storing)
            await storing
        finally:
            storing.cancel()


Sealed = list[bytes | L.LetterRefused | None]


async def _put(queue: asyncio.Queue[Any], item: Any, storing: asyncio.Task[None]) -> None:
    """Queue `item` for the storing task, or raise its error if it has stopped."""
    put = asyncio.ensure_future(queue.put(item))
    await asyncio.wait({put, storing}, return_when=asyncio.FIRST_COMPLETED)
    if put.done():
        return
    put.cancel()
    storing.result()  # raises what stopped it
    raise RuntimeError("The storing task ended early")


def _no_rejects(line: int, why: str) -> None:
    pass


def reject_writer(path: Path, start: int) -> Callable[[int, str], None]:
    """Append each refused line's number and reason to `path` (JSON Lines), for a run
    that stores from line `start` on. What the file says of those lines is dropped
    first: a run that crashed wrote it before their chunk was stored, and this run
    judges them again (a fresh batch starts at 0: an empty file)."""
    kept = []
    if path.exists():
        with path.open(encoding="utf-8") as earlier:
            for entry in earlier:
                try:
                    if json.loads(entry)["line"] < start:
                        kept.append(entry.rstrip("\n") + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # half a line, written as the crash came
    path.write_text("".join(kept), encoding="utf-8")

    def write(line: int, why: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"line": line, "error": why}) + "\n")

    return write
