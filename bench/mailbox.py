"""Bulk digital mail: letters per second end to end, and memory, for a big batch.

What one run does, on a scratch database with the demo country (`--persons`):
JSON Lines (one letter each, its own small PDF inline as base64, to a person of the
population in turn), written to a file before the clock starts, go through
`felles.mailbox.bulk.send_lines`, the code behind `felles mailbox send-batch`: parse
and check each line, look the chunk's recipients up in the registers, choose the
channel (digital / print / none), encrypt each letter as CMS EnvelopedData for its
provider in worker processes (one per core), store letters and encrypted content, then
commit the batch and release it (every letter delivered, its notifications made and
pending). Letters per second are over that whole span; memory is the resident size of
this process and its sealing processes, sampled every second, so a flat line shows
nothing grows with the batch.

    .venv/bin/python bench/mailbox.py --backend postgresql --letters 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import _common as common  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_PG_URL = os.environ.get("FELLES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_PER_S = 3000
MARK = b"LETTER-PLACEHOLDER-0000000"  # replaced per letter: every PDF differs


def template_pdf() -> bytes:
    """A one-page letter PDF (about 1.5 KB) with a fixed-width mark to vary per letter."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.compress = False
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 8, "Vedtak om bostotte")
    pdf.ln()
    pdf.cell(0, 8, MARK.decode())
    pdf.ln()
    pdf.multi_cell(0, 6, "Du har fatt innvilget bostotte for desember. " * 6)
    return bytes(pdf.output())


def lines(pids: list[str], count: int) -> Iterator[str]:
    """`count` letters as JSON Lines, to `pids` in turn, each PDF different."""
    template = template_pdf()
    head, tail = template.split(MARK)
    for n in range(count):
        mark = f"LETTER-{n:019d}".encode()
        content = base64.b64encode(head + mark + tail).decode()
        yield json.dumps(
            {
                "recipient": pids[n % len(pids)],
                "title": "Vedtak om bostøtte",
                "sender_ref": f"bench-{n}",
                "document": {"name": "vedtak.pdf", "content_base64": content},
            }
        )


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class MemoryWatch:
    """Resident memory of this process tree, once a second, in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            pids = list(common.tree_ticks(os.getpid()))
            self.samples.append((time.perf_counter() - self._began, rss_kib(pids)))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        values = [kib for _, kib in self.samples]
        tenth = max(1, len(values) // 10)
        return {
            "peak_mib": round(max(values) / 1024, 1),
            "first_tenth_mib": round(max(values[:tenth]) / 1024, 1),
            "last_tenth_mib": round(max(values[-tenth:]) / 1024, 1),
            "samples": [(round(t, 1), round(kib / 1024, 1)) for t, kib in self.samples],
        }


def own_cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (the sealing processes,
    reaped when the pool shuts down): sampling /proc at the end would miss them."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


async def run_backend(
    backend: str, url: str, dbname: str, folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from felles.config import Settings
    from felles.db import Database
    from felles.demo.service import seed_if_empty
    from felles.mailbox import bulk
    from felles.mailbox.models import Letter, LetterContent, Notification
    from felles.mailbox.providers import ensure_providers
    from felles.registry import service as registry
    from felles.registry.models import Person
    from felles.web.observability import configure_logging

    configure_logging("WARNING")
    settings = Settings(env="test", data_dir=folder, database_url=url, redis_url=None)
    db = Database(settings.resolved_database_url)
    try:
        await db.upgrade()
        await seed_if_empty(db, persons=args.persons, seed=2016)
        async with db.session() as session:
            await ensure_providers(session, settings.keys_dir)
            sender = (await registry.get_agency(session, "nav")).orgnr
            pids = list(
                await session.scalars(
                    select(Person.pid).where(Person.deceased_on.is_(None)).order_by(Person.pid)
                )
            )
        # The mailing as `felles mailbox send-batch` reads it: a file, written before the
        # clock starts (making the PDFs and JSON is the sender's work, not Felles').
        mailing = folder / "mailing.jsonl"
        with mailing.open("w", encoding="utf-8") as out:
            for line in lines(pids, args.letters):
                out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())  # on disk before the clock starts, not flushed during
        cpu_before = own_cpu_seconds()
        db_ticks = common.database_ticks(dbname)
        machine = common.busy_ticks()
        done = 0
        began = time.perf_counter()

        def progress(phase: str, n: int) -> None:
            nonlocal done
            if phase == "stored" and args.verbose:
                done += n
                if done % 100_000 < n:
                    rate = done / (time.perf_counter() - began)
                    print(f"  {done:,} stored, {rate:,.0f}/s", flush=True)

        with MemoryWatch() as memory, mailing.open(encoding="utf-8") as read:
            outcome = await bulk.send_lines(
                db,
                read,
                sender_orgnr=sender,
                reference="bench",
                base=folder,
                processes=args.processes,
                chunk=args.chunk,
                progress=progress,
            )
        seconds = time.perf_counter() - began
        own = (own_cpu_seconds() - cpu_before) * common.CLK_TCK
        pg = common.ticks_delta(db_ticks, common.database_ticks(dbname))
        busy = common.busy_ticks() - machine
        async with db.session() as session:
            by_channel = dict(
                (
                    await session.execute(
                        select(Letter.channel, func.count()).group_by(Letter.channel)
                    )
                ).all()
            )
            by_status = dict(
                (
                    await session.execute(
                        select(Letter.status, func.count()).group_by(Letter.status)
                    )
                ).all()
            )
            contents = await session.scalar(select(func.count()).select_from(LetterContent))
            pending = await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == "pending")
            )
        size = await asyncio.to_thread(database_file_size, folder) if backend == "sqlite" else 0
        return {
            "backend": backend,
            "letters": args.letters,
            "persons": len(pids),
            "processes": args.processes,
            "chunk": args.chunk,
            "seconds": round(seconds, 1),
            "letters_per_s": round(args.letters / seconds),
            "stored": outcome.stored,
            "released": outcome.released,
            "rejected": outcome.rejected,
            "batch_status": outcome.status,
            "channels": by_channel,
            "statuses": by_status,
            "contents": contents,
            "notifications_pending": pending,
            "cpu_ms_per_letter": {
                "felles": round(own / common.CLK_TCK * 1000 / args.letters, 3),
                "postgresql": round(pg / common.CLK_TCK * 1000 / args.letters, 3),
                "machine": round(busy / common.CLK_TCK * 1000 / args.letters, 3),
            },
            "memory": memory.summary(),
            "sqlite_file_mib": round(size / 2**20) if size else None,
        }
    finally:
        await db.dispose()


def database_file_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("felles.db*"))


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(
        title="Bulk digital mail, end to end "
        "(parse, look up, encrypt, store, notify queued, release)"
    )
    for column in (
        "backend",
        "letters",
        "letters/s",
        "CPU ms/letter (felles + PG)",
        "memory MiB (first 10% / last 10% / peak)",
        "channels",
    ):
        out.add_column(column)
    for r in rows:
        cpu = r["cpu_ms_per_letter"]
        mem = r["memory"]
        out.add_row(
            r["backend"],
            f"{r['letters']:,}",
            f"{r['letters_per_s']:,}",
            f"{cpu['felles']} + {cpu['postgresql']}",
            f"{mem.get('first_tenth_mib')} / {mem.get('last_tenth_mib')} / {mem.get('peak_mib')}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(r["channels"].items())),
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| backend | letters | letters/s | CPU ms per letter (Felles + PostgreSQL) "
        "| memory MiB (first 10 % / last 10 % / peak) | channels |\n|---|---:|---:|---|---|---|"
    )
    body = []
    for r in rows:
        cpu, mem = r["cpu_ms_per_letter"], r["memory"]
        body.append(
            f"| {r['backend']} | {r['letters']:,} | {r['letters_per_s']:,} | "
            f"{cpu['felles']} + {cpu['postgresql']} | {mem.get('first_tenth_mib')} / "
            f"{mem.get('last_tenth_mib')} / {mem.get('peak_mib')} | "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(r["channels"].items()))
            + " |"
        )
    return "\n".join([head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--letters", type=int, default=1_000_000)
    parser.add_argument("--persons", type=int, default=20_000, help="The demo country's size.")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_URL)
    parser.add_argument("--quiet-wait", type=float, default=30.0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="Progress every 100,000.")
    args = parser.parse_args()
    console = Console()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []
    load_average = os.getloadavg()[0]
    for backend in backends:
        console.print(f"[bold]{backend}[/]: {args.letters:,} letters")
        common.wait_for_quiet(args.quiet_wait, console)
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="felles-bench-mail-") as tmp:
            folder = Path(tmp)
            with common.fresh_database(backend, args.pg_admin_url, folder, bench="mailbox") as (
                url,
                dbname,
            ):
                row = asyncio.run(run_backend(backend, url, dbname, folder, args))
        rows.append(row)
        report = {
            **common.report_head("mailbox", began, load_average),
            "target": {"letters_per_s": TARGET_PER_S, "backend": "postgresql"},
            "result": row,
            "markdown": markdown([row]),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"mailbox-{backend}.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print(table(rows))
    if args.markdown:
        console.print(markdown(rows), markup=False, highlight=False)
    console.print(
        "Wrote " + ", ".join(f"bench/results/mailbox-{b}.json" for b in backends),
        highlight=False,
    )


if __name__ == "__main__":
    main()
