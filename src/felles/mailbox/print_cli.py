"""`felles mailbox print-queue`: the demo's stand-in for the print provider."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from felles.cliutil import err, fail, run, settings, with_database
from felles.db import Database
from felles.mailbox import cms, printing
from felles.mailbox.providers import PRINT_PROVIDER, private_key

QUEUE_PAGE = 100


@dataclass
class PrintRun:
    written: list[str] = field(default_factory=list)
    confirmed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (letter id, why)


def _write(path: Path, content: bytes) -> None:
    """Whole or not at all: a PDF half written is never taken for a letter."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(content)
    os.replace(partial, path)


async def _print_queue(
    db: Database, keys_dir: Path, out: Path, key: rsa.RSAPrivateKey, confirm: bool
) -> PrintRun:
    done = PrintRun()
    async with db.session() as session:
        total = await printing.waiting(session)
        pem = await printing.certificate_pem(session)
    if total == 0 or pem is None:
        return done
    certificate = x509.load_pem_x509_certificate(pem.encode())
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("Printing", total=total)
        after = None
        while True:
            async with db.session() as session:
                page = await printing.queue(session, after=after, limit=QUEUE_PAGE)
            for letter in page:
                try:
                    sealed = await printing.document(db, letter.id, keys_dir)
                    _write(out / f"{letter.id}.pdf", cms.decrypt(sealed, key, certificate))
                    done.written.append(letter.id)
                    if confirm:
                        async with db.session() as session:
                            await printing.confirm_printed(session, letter.id)
                        done.confirmed += 1
                except (printing.NotInQueue, printing.NotYetInQueue):
                    pass  # confirmed by someone else meanwhile
                except printing.Unprintable as exc:
                    done.failed.append((letter.id, str(exc)))
                except cms.CmsError as exc:  # not sealed to this print provider's key
                    done.failed.append((letter.id, str(exc) or type(exc).__name__))
                progress.update(task, total=max(total, len(done.written) + len(done.failed)))
                progress.advance(task)
            if len(page) < QUEUE_PAGE:
                return done
            after = page[-1].id


def print_queue(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder to write <letter id>.pdf to.", file_okay=False),
    ],
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="Confirm each letter printed once its PDF is written."),
    ] = False,
) -> None:
    """Stand in for the print provider: fetch the print document of every letter waiting
    in the print queue, decrypt it with the print provider's key (in the demo the data
    dir's keys/mailbox-print.key) and write it as a PDF, the address page first. With
    --confirm each letter is then reported printed: it leaves the queue, the sender is
    told, and the encrypted letter is deleted."""
    conf = settings()
    key_file = conf.keys_dir / f"mailbox-{PRINT_PROVIDER}.key"
    if not key_file.is_file():
        fail(
            f"No print provider key at {key_file}. Run this where Felles keeps its keys "
            "(FELLES_DATA_DIR)."
        )
    try:
        key = private_key(conf.keys_dir, PRINT_PROVIDER)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"Cannot use {exc.filename}: {exc.strerror}")
    except ValueError:
        fail(f"{key_file} is not a PEM private key without a password.")

    async def work(db: Database) -> PrintRun:
        return await _print_queue(db, conf.keys_dir, out, key, confirm)

    done = run(with_database(conf, work))
    if not done.written and not done.failed:
        err.print("The print queue is empty.")
        return
    err.print(f"Wrote {len(done.written)} PDF(s) to {out}.", highlight=False, soft_wrap=True)
    if confirm:
        err.print(f"Confirmed {done.confirmed} letter(s) printed.")
    for letter_id, why in done.failed:
        err.print(
            f"[bold red]Could not print[/] {letter_id}: {why}", highlight=False, soft_wrap=True
        )
    if done.failed:
        raise typer.Exit(1)
