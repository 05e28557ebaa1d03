"""`felles mailbox send-batch FILE.jsonl`: a bulk mailing from the command line, with a
progress bar; run it again after a crash and it goes on where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from felles.cliutil import err, fail, run, settings, with_database
from felles.db import Database
from felles.mailbox import bulk
from felles.mailbox.providers import ensure_providers
from felles.registry import service as registry


def count_lines(path: Path) -> int:
    with path.open("rb") as source:
        return sum(block.count(b"\n") for block in iter(lambda: source.read(1 << 20), b""))


def send_batch(
    file: Annotated[Path, typer.Argument(help="JSON Lines: one letter per line.")],
    sender: Annotated[
        str, typer.Option(help="The sending agency: its short name (nav) or org. number.")
    ],
    reference: Annotated[
        str | None,
        typer.Option(help="Your name for the batch (default: the file's name); unique."),
    ] = None,
    commit: Annotated[
        bool, typer.Option(help="Commit when every line is stored (--no-commit: keep it open).")
    ] = True,
    processes: Annotated[
        int, typer.Option(min=1, max=64, help="Processes that encrypt letters.")
    ] = bulk.PROCESSES,
) -> None:
    """Send a bulk mailing: store every line's letter in the batch, then commit it so all
    its letters are delivered together. Lines that cannot be sent go to FILE.rejected.jsonl
    with the reason. Running the same command again after a crash goes on after the last
    stored line: no letter is lost or sent twice."""
    if not file.is_file():
        fail(f"Cannot read {file}")
    conf = settings()
    total = count_lines(file)
    name = reference or file.name
    rejected_file = file.with_name(file.name + ".rejected.jsonl")

    async def work(db: Database) -> bulk.Outcome:
        async with db.session() as session:
            await ensure_providers(session, conf.keys_dir)
            try:
                agency = await registry.get_agency(session, sender)
            except registry.NotFound:
                fail(f"No agency called {sender!r}")
        with (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
            ) as bar,
            file.open(encoding="utf-8") as lines,
        ):
            storing = bar.add_task("Encrypting and storing", total=total)
            releasing = bar.add_task("Delivering", total=None, visible=False)

            def progress(phase: str, n: int) -> None:
                if phase in ("skipped", "stored"):
                    bar.advance(storing, n)
                elif phase == "released":
                    bar.update(releasing, visible=True)
                    bar.advance(releasing, n)

            return await bulk.send_lines(
                db,
                lines,
                sender_orgnr=agency.orgnr,
                reference=name,
                base=file.parent,
                commit=commit,
                processes=processes,
                rejects=bulk.reject_writer(rejected_file),
                progress=progress,
            )

    outcome = run(with_database(conf, work))
    if outcome.status == "cancelled":
        fail(f"The batch {name!r} was cancelled; use another --reference")
    if outcome.resumed_at:
        err.print(f"Went on from line {outcome.resumed_at + 1:,} (the lines before were stored).")
    err.print(
        f"Batch {outcome.batch_id} ({name}): {outcome.stored:,} letters stored, "
        f"{outcome.released:,} delivered, {outcome.rejected:,} lines refused; "
        f"the batch is {outcome.status}.",
        highlight=False,
    )
    if outcome.rejected:
        err.print(f"The refused lines and why: {rejected_file}", highlight=False)
