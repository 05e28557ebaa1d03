"""Bulk mailings from JSON Lines in-process (`bulk.send_lines`): lines that cannot be
sent go to the rejects file with their reasons while the rest are stored, and a run
that stops part-way leaves a rejects file that the next run completes without saying
anything twice. (tests/mailbox/test_bulk_crash.py kills the real command.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.mailbox import bulk
from felles.mailbox.models import Letter
from felles.registry import service as registry
from tests.mailbox.mail import demo_people, pdf
from tests.mailbox.stored import NOT_IN_REGISTER, ensure_providers

BAD = {  # line number: (what is wrong, a word the reason must hold)
    2: ("not a number", "recipient"),
    4: ("nobody", "nobody in the population register"),
    6: ("not a PDF", "PDF"),
    8: ("missing file", "missing.pdf"),
    10: ("not JSON", "JSON"),
}
LINES = 12


def mailing(folder: Path, pid: str) -> list[str]:
    """Twelve lines; the ones in BAD are wrong in their own way."""
    (folder / "brev.pdf").write_bytes(pdf("Årsoppgave"))
    (folder / "fake.pdf").write_bytes(b"%PDF-1.7 this is not really a PDF\n%%EOF\n")
    lines = []
    for number in range(LINES):
        line: dict[str, object] = {
            "recipient": pid,
            "title": "Årsoppgave",
            "sender_ref": f"line-{number}",
            "document": {"name": "brev.pdf", "path": "brev.pdf"},
        }
        if number == 2:
            line["recipient"] = "12345678901"
        elif number == 4:
            line["recipient"] = NOT_IN_REGISTER
        elif number == 6:
            line["document"] = {
                "name": "brev.pdf",
                "content_base64": base64.b64encode(b"<html>not a PDF</html>").decode(),
            }
        elif number == 8:
            line["document"] = {"name": "brev.pdf", "path": "missing.pdf"}
        lines.append("{not json" if number == 10 else json.dumps(line))
    return lines


def stopping_after(lines: list[str], count: int) -> Iterator[str]:
    """The file as a run sees it that dies after reading `count` lines."""
    yield from lines[:count]
    raise RuntimeError("the machine went down")


async def stored_refs(db: Database, batch_id: str) -> list[str]:
    async with db.session() as session:
        refs = await session.scalars(
            select(Letter.sender_ref).where(Letter.batch_id == batch_id).order_by(Letter.seq)
        )
        return [ref or "" for ref in refs]


@pytest.fixture
async def nav(db: Database, settings: Settings) -> str:
    await ensure_providers(db, settings)
    async with db.session() as session:
        return (await registry.get_agency(session, "nav")).orgnr


async def test_refused_lines_go_to_the_rejects_file_and_the_rest_are_stored(
    db: Database, nav: str, tmp_path: Path
) -> None:
    pid = (await demo_people(db))["felles"]
    rejects = tmp_path / "mailing.jsonl.rejected.jsonl"
    rejects.write_text('{"line": 0, "error": "from another mailing"}\n')  # a fresh batch
    outcome = await bulk.send_lines(
        db,
        mailing(tmp_path, pid),
        sender_orgnr=nav,
        reference=f"rejects-{tmp_path.name}",
        base=tmp_path,
        processes=1,
        chunk=3,
        rejects_file=rejects,
    )
    assert outcome.status == "released" and outcome.rejected == len(BAD)
    refused = [json.loads(entry) for entry in rejects.read_text().splitlines()]
    assert [entry["line"] for entry in refused] == sorted(BAD)
    for entry in refused:
        assert BAD[entry["line"]][1] in entry["error"], entry
    good = [f"line-{n}" for n in range(LINES) if n not in BAD]
    assert await stored_refs(db, outcome.batch_id) == good


async def test_a_run_that_stops_part_way_and_goes_on_says_each_refusal_once(
    db: Database, nav: str, tmp_path: Path
) -> None:
    pid = (await demo_people(db))["felles"]
    lines = mailing(tmp_path, pid)
    rejects = tmp_path / "mailing.jsonl.rejected.jsonl"
    reference = f"resumed-{tmp_path.name}"

    async def run(source: Iterator[str] | list[str]) -> bulk.Outcome:
        return await bulk.send_lines(
            db,
            source,
            sender_orgnr=nav,
            reference=reference,
            base=tmp_path,
            commit=False,
            processes=1,
            chunk=2,
            rejects_file=rejects,
        )

    first = await run(lines[:7])  # stored up to line 5; line 6 is refused
    assert first.resumed_at == 0 and first.stored == 4
    with rejects.open("a") as half_written:  # as if a crash came in the middle of a write
        half_written.write('{"line": 9, "err')
    with pytest.raises(RuntimeError, match="went down"):
        await run(stopping_after(lines, 11))  # how many chunks it stored is up to timing
    last = await run(lines)
    assert last.resumed_at >= 6
    refused = [json.loads(entry)["line"] for entry in rejects.read_text().splitlines()]
    assert refused == sorted(BAD)  # each once, though lines 6 to 10 were judged twice
    good = [f"line-{n}" for n in range(LINES) if n not in BAD]
    assert await stored_refs(db, last.batch_id) == good
