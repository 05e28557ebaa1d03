"""What bench/identity.py and bench/portal.py share: free ports, scratch databases, the
server's process group, CPU ticks from /proc (a process tree, PostgreSQL's backends, the
whole machine), waiting for a quiet machine, percentiles and the table's number format.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from rich.console import Console

CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime in clock ticks) of a live process, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[11]) + int(fields[12])


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def tree_ticks(root: int) -> dict[int, int]:
    """CPU ticks of `root` and every process below it (uvicorn's workers and such)."""
    stats = {pid: s for pid in all_pids() if (s := proc_stat(pid)) is not None}
    members = {root}
    grew = True
    while grew:  # bounded: each pass adds at least one process or stops
        before = len(members)
        members |= {pid for pid, (ppid, _) in stats.items() if ppid in members}
        grew = len(members) > before
    return {pid: stats[pid][1] for pid in members if pid in stats}


def database_ticks(dbname: str | None) -> dict[int, int]:
    """CPU ticks of the PostgreSQL backends connected to `dbname`."""
    if not dbname:
        return {}
    found: dict[int, int] = {}
    for pid in all_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if cmdline.startswith(b"postgres: ") and f" {dbname} ".encode() in cmdline:
            stat = proc_stat(pid)
            if stat is not None:
                found[pid] = stat[1]
    return found


def busy_ticks() -> int:
    """CPU ticks the whole machine has spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def wait_for_quiet(limit_s: float, console: Console) -> float:
    """Wait (at most `limit_s`) until the rest of the machine uses < 0.25 core; the load."""
    deadline = time.monotonic() + limit_s
    while True:
        before = busy_ticks()
        time.sleep(1.0)
        cores = (busy_ticks() - before) / CLK_TCK
        if cores < 0.25 or time.monotonic() >= deadline:
            return cores
        console.print(f"  waiting for a quiet machine: {cores:.2f} cores busy elsewhere")


def database_sessions(dbname: str | None, pg_admin_url: str) -> int | None:
    """Connections PostgreSQL has opened (and closed) to `dbname` so far."""
    if not dbname:
        return None
    import psycopg

    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    return int(row[0]) if row else None


def ticks_delta(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks spent between two snapshots; a process born in between counts from zero."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session (its pid is the group id)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def fresh_database(
    backend: str, pg_admin_url: str, folder: Path, prefix: str = "felles", bench: str = "identity"
) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, PostgreSQL database name or '') of a new database, then removed."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'felles.db'}", ""
        return
    import psycopg

    name = f"{prefix}_bench_{bench}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin_url.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql://{base}/{name}", name  # Felles picks its driver
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def felles_command() -> list[str]:
    script = Path(sys.executable).parent / "felles"
    return [str(script)] if script.exists() else [sys.executable, "-m", "felles"]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def fmt(stat: dict[str, float] | None, digits: int = 0, ranged: bool = True) -> str:
    if stat is None:
        return "-"
    median = f"{stat['median']:,.{digits}f}"
    if not ranged:
        return median
    return f"{median} ({stat['min']:,.{digits}f}-{stat['max']:,.{digits}f})"


class LoadProcesses:
    """Long-lived load-generator processes (spawned once, reused for every run), each
    running `worker(conn)` on its end of a pipe: one command in, one result out."""

    def __init__(self, processes: int, worker: Callable[[Connection], None]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def ticks(self) -> dict[int, int]:
        return {p: (proc_stat(p) or (0, 0))[1] for p in self.pids()}

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def median_range(values: list[float | None]) -> dict[str, float] | None:
    """Median, min and max of the runs' values that exist."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "median": round(statistics.median(present), 3),
        "min": round(min(present), 3),
        "max": round(max(present), 3),
    }


def start_felles(
    url: str, folder: Path, workers: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`felles serve` (FELLES_ENV=test) on `url` with its data dir in `folder`, in its own
    session (see `stop_group`), on a free port: the process, the port and its log."""
    port = free_port()
    env = {
        **os.environ,
        "FELLES_ENV": "test",
        "FELLES_DATABASE_URL": url,
        "FELLES_DATA_DIR": str(folder / "var"),
        "FELLES_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("FELLES_REDIS_URL", None)
    env.update(extra_env or {})
    log = folder / "server.log"
    command = [
        *felles_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, port, log


def report_head(
    benchmark: str, began: float, load_average: float, **machine: str
) -> dict[str, Any]:
    """The first keys of a results file: what ran, when, how long, on what."""
    return {
        "benchmark": benchmark,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "machine": {
            "python": platform.python_version(),
            **machine,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_before": round(load_average, 2),
        },
    }


LOAD_METHOD = (
    ("runs", "runs"),
    ("seconds", "seconds"),
    ("warmup_seconds", "warmup"),
    ("concurrency", "concurrency"),
    ("load_generator_processes", "processes"),
    ("persons", "persons"),
)


def load_method(args: Any) -> dict[str, Any]:
    """How the load was made (the options both benchmarks share)."""
    return {key: getattr(args, option) for key, option in LOAD_METHOD}


def add_load_options(
    parser: argparse.ArgumentParser,
    per: str,
    warmup: float,
    concurrency: int,
    who: str,
    persons: int,
    pg_url: str,
) -> None:
    """The options both benchmarks share: runs, load, the demo country, the database,
    a quiet machine, the Markdown table and the server logs."""
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of one run.")
    parser.add_argument("--runs", type=int, default=3, help=f"Measured runs per {per}.")
    parser.add_argument("--warmup", type=float, default=warmup, help=f"Warm-up seconds per {per}.")
    parser.add_argument("--concurrency", type=int, default=concurrency, help=f"{who} in all.")
    parser.add_argument("--processes", type=int, default=2, help="Load-generator processes.")
    parser.add_argument("--persons", type=int, default=persons, help="People in the demo country.")
    parser.add_argument("--pg-url", default=pg_url, help="Admin URL to create databases.")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="Before each server, wait up to this many seconds for other load to stop.",
    )
    parser.add_argument("--markdown", action="store_true", help="Also print a Markdown table.")
    parser.add_argument("--keep-logs", action="store_true", help="Copy server logs to results/.")


def check_load_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (1 <= args.runs <= 20 and 1 <= args.seconds <= 120 and 0 <= args.warmup <= 60):
        parser.error("--runs 1-20, --seconds 1-120 and --warmup 0-60")
    if not (1 <= args.processes <= 8 and args.processes <= args.concurrency <= 512):
        parser.error("--processes 1-8 and --concurrency between --processes and 512")
