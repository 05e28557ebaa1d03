"""How fast the synthetic country is seeded: `python bench/seed.py [--postgresql]`.

Each run seeds a fresh database (a new SQLite file; with --postgresql also a new
PostgreSQL database, dropped afterwards). Migrations run before the clock starts; the
clock covers `seed_country`: generating the country and writing it in one transaction.
Prints a table (median of the runs and their range) and writes bench/results/seed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from felles.db import Database
from felles.demo.service import SeedSummary, seed_country

RESULTS = Path(__file__).parent / "results" / "seed.json"
DEFAULT_PG_URL = os.environ.get("FELLES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_database(backend: str, pg_admin_url: str) -> Iterator[str]:
    """The URL of a new, empty database, removed when the block ends."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="felles-bench-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'seed.db'}"
        return
    import psycopg

    name = f"felles_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def one_run(url: str, persons: int, seed: int) -> tuple[float, float, SeedSummary]:
    """Seed once; return (wall seconds, CPU seconds of this process, summary)."""
    db = Database(url)
    try:
        await db.upgrade()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = await seed_country(db, persons=persons, seed=seed)
        return time.perf_counter() - wall, time.process_time() - cpu, summary
    finally:
        await db.dispose()


def measure(backend: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    walls: list[float] = []
    cpus: list[float] = []
    summary: SeedSummary | None = None
    for run in range(1, args.runs + 1):
        with fresh_database(backend, args.pg_url) as url:
            wall, cpu, summary = asyncio.run(one_run(url, args.persons, args.seed))
        walls.append(wall)
        cpus.append(cpu)
        console.print(f"  {backend} run {run}/{args.runs}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    assert summary is not None
    median = statistics.median(walls)
    return {
        "backend": backend,
        "persons": args.persons,
        "seed": args.seed,
        "runs_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
        "median_s": round(median, 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "persons_per_s": round(args.persons / median, 1),
        "written": {
            "organisations": summary.organisations,
            "roles": summary.roles,
            "contacts": summary.contacts,
            "reserved": summary.reserved,
            "agencies": summary.agencies,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgresql", action="store_true", help="Also measure PostgreSQL.")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="Admin URL to create databases.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.persons < 1 or args.runs < 1:
        parser.error("--persons and --runs must be at least 1")

    console = Console()
    backends = ["sqlite", "postgresql"] if args.postgresql else ["sqlite"]
    results = [measure(backend, args, console) for backend in backends]

    table = Table(title=f"Seeding the demo country ({args.runs} runs each)")
    for column in ("backend", "persons", "median s", "range s", "persons/s", "median CPU s"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in results:
        table.add_row(
            r["backend"],
            f"{r['persons']:,}",
            f"{r['median_s']:.2f}",
            f"{r['min_s']:.2f}-{r['max_s']:.2f}",
            f"{r['persons_per_s']:,.0f}",
            f"{statistics.median(r['cpu_s']):.2f}",
        )
    console.print(table)

    report = {
        "benchmark": "seed",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
