"""`felles mailbox send` and `send-batch`: one letter, or a bulk mailing from JSON Lines
with a progress bar (run it again after a crash and it goes on where it stopped)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

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
                elif phase == "to_release":
                    bar.update(releasing, total=n)
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
                rejects_file=rejected_file,
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


def send_letter(
    file: Annotated[Path, typer.Argument(help="The letter: a PDF file.")],
    to: Annotated[str, typer.Option("--to", help="The recipient's national identity number.")],
    sender: Annotated[
        str, typer.Option(help="The sending agency: its short name (nav) or org. number.")
    ] = "nav",
    title: Annotated[str, typer.Option(help="The letter's title, shown in the inbox.")] = "",
    sensitive: Annotated[
        bool, typer.Option(help="Needs login at level high to open (default: substantial).")
    ] = False,
    print_allowed: Annotated[
        bool, typer.Option("--print/--no-print", help="Post it on paper if not digital.")
    ] = True,
) -> None:
    """Send one letter, as an agency's server would over the API: the answer says which
    way it went (digital, print, or none and why)."""
    from felles.mailbox import letters as L
    from felles.mailbox.sending import UnknownPerson, send
    from felles.registry.numbers import InvalidNumber, parse_pid

    try:
        pid = parse_pid(to).value
    except InvalidNumber as exc:
        fail(f"--to: {exc}.", code=2)
    try:
        content = file.read_bytes()
    except OSError as exc:
        fail(f"Cannot read {file}: {exc.strerror}")
    conf = settings()
    letter = L.LetterIn(
        recipient=pid,
        title=title or file.stem,
        main=L.Document(file.name, content),
        sensitivity="sensitive" if sensitive else "normal",
        print_allowed=print_allowed,
    )

    async def work(db: Database) -> Any:
        async with db.session() as session:
            await ensure_providers(session, conf.keys_dir)
        async with db.session() as session:
            try:
                agency = await registry.get_agency(session, sender)
            except registry.NotFound:
                fail(f"No agency called {sender!r}")
            try:
                return await send(session, agency.orgnr, letter)
            except L.LetterRefused as refused:
                fail(f"{refused.field}: {refused.message}")
            except UnknownPerson:
                fail("Nobody in the population register has this number")

    sent = run(with_database(conf, work))
    why = f" ({sent.reason.value.replace('_', ' ')})" if sent.reason else ""
    err.print(f"Letter {sent.id}: {sent.channel.value}{why}, {sent.status.value}.", highlight=False)
    if sent.channel.value == "digital":
        err.print(
            f"The recipient reads it at {conf.base_url}/mailbox (if their mailbox is Felles').",
            highlight=False,
        )


def demo_people() -> None:
    """People of the demo country to send letters to: one with Felles' own mailbox (log
    in as them with TestID to read it), one reserved against digital mail (print), and
    one with another provider's mailbox."""
    from sqlalchemy import select

    from felles.registry.models import ContactInfo, Person

    async def work(db: Database) -> list[tuple[str, str, str]]:
        found = []
        async with db.session() as session:
            for what, condition in (
                (
                    "Felles mailbox: read it at /mailbox",
                    (ContactInfo.mailbox_provider == "felles") & ContactInfo.email.is_not(None),
                ),
                ("reserved: goes to print", ContactInfo.reserved.is_(True)),
                ("digipost mailbox", ContactInfo.mailbox_provider == "digipost"),
            ):
                row = (
                    await session.execute(
                        select(Person.pid, Person.given_name, Person.family_name)
                        .join(ContactInfo, ContactInfo.pid == Person.pid)
                        .where(condition, Person.deceased_on.is_(None))
                        .order_by(Person.pid)
                        .limit(1)
                    )
                ).first()
                if row:
                    found.append((row[0], f"{row[1]} {row[2]}", what))
        return found

    table = Table("national identity number", "name", "what happens")
    for row in run(with_database(settings(), work)):
        table.add_row(*row)
    Console().print(table)


def example_mailing(
    out: Annotated[Path, typer.Argument(help="The JSON Lines file to write.")],
    letters: Annotated[int, typer.Option(min=1, max=100_000_000, help="How many.")] = 1000,
    document: Annotated[Path, typer.Option(help="The PDF every letter carries (by path).")] = Path(
        "docs/examples/letter.pdf"
    ),
) -> None:
    """Write a mailing for `send-batch` to try: letters to the demo country's people in
    turn, each with the same PDF by path."""
    import json
    import os

    from sqlalchemy import select

    from felles.registry.models import Person

    async def work(db: Database) -> list[str]:
        async with db.session() as session:
            return list(
                await session.scalars(
                    select(Person.pid).where(Person.deceased_on.is_(None)).order_by(Person.pid)
                )
            )

    pids = run(with_database(settings(), work))
    if not pids:
        fail("The population register is empty: run `felles demo seed` first")
    path = os.path.relpath(document.resolve(), out.resolve().parent)
    with out.open("w", encoding="utf-8") as lines:
        for n in range(letters):
            line = {
                "recipient": pids[n % len(pids)],
                "title": "Vedtak om bostøtte",
                "sender_ref": f"example-{n}",
                "document": {"name": document.name, "path": path},
            }
            lines.write(json.dumps(line, ensure_ascii=False) + "\n")
    err.print(f"Wrote {letters:,} letters to {out}", highlight=False)
