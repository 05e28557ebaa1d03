"""Events: emit into the outbox, fan out and deliver webhooks: `python bench/events.py`.

Runs on SQLite in a temporary folder, or on PostgreSQL when FELLES_DATABASE_URL points at
one (treated as an admin URL: a scratch database is created there and dropped after).

Phase 1, throughput: N events (default 20,000) are emitted in transactions of
`--per-transaction` events (1: one event per business change, as the portal does per
submission); then the dispatcher fans them all out (one subscription matches every event,
so one delivery each), then delivers them all to a local receiver. Reported: emit µs per
event (the whole transaction, commit included) and µs inside `emit()` alone, events fanned
out per second, deliveries per second.

Phase 2, latency: `--latency-events` events are emitted at `--rate` per second while the
dispatcher runs its real loop (waking every FELLES_EVENTS_POLL_SECONDS, default 1 s, when
idle); p50/p99 from the event's `time` to its arrival at the receiver.

The receiver is uvicorn in its own process (so it does not share the dispatcher's CPU),
answering 204 and noting when each webhook-id arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from felles.config import to_async_url
from felles.db import Database
from felles.events import service
from felles.events.dispatcher import Dispatcher
from felles.events.webhooks import SecretBox

HERE = Path(__file__).resolve().parent
ORG = "310000001"
TYPE = "no.felles.portal.submission.created"


# --- The receiver (its own process) -----------------------------------------------------


def _receiver(port: int) -> None:
    import uvicorn

    arrived: dict[str, float] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the body to its end
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            body = json.dumps(arrived).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        headers = dict(scope["headers"])
        arrived.setdefault(headers[b"webhook-id"].decode(), time.time())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_receiver, args=(port,))
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url, timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.join(10)


# --- The database -----------------------------------------------------------------------


@contextlib.contextmanager
def database(folder: Path) -> Iterator[tuple[str, str]]:
    """(label, async URL) of a fresh database on the configured backend."""
    url = os.environ.get("FELLES_DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield "SQLite", f"sqlite+aiosqlite:///{folder / 'events.db'}"
        return
    import psycopg

    admin = url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"felles_bench_events_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]
    try:
        yield f"PostgreSQL {version}", to_async_url(admin.rsplit("/", 1)[0] + "/" + name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- The phases -------------------------------------------------------------------------


async def emit_all(db: Database, count: int, per_tx: int) -> tuple[float, float]:
    """(wall seconds for everything, seconds inside emit() alone)."""
    inside = 0.0
    began = time.perf_counter()
    for start in range(0, count, per_tx):
        async with db.session() as session:
            for i in range(start, min(start + per_tx, count)):
                t0 = time.perf_counter()
                await service.emit(
                    session,
                    type=TYPE,
                    source="/portal/services/bench",
                    subject=f"sub-{i}",
                    recipient_orgnr=ORG,
                    data={"submission": i, "service": "kindergarten", "reference": f"AR{i:08d}"},
                )
                inside += time.perf_counter() - t0
    return time.perf_counter() - began, inside


async def drain(step: Any) -> tuple[int, float]:
    done = 0
    began = time.perf_counter()
    while True:
        count = await step()
        if not count:
            return done, time.perf_counter() - began
        done += count


async def arrivals(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        found: dict[str, float] = (await client.get(url)).json()
        return found


async def latency_phase(
    db: Database, dispatcher: Dispatcher, url: str, count: int, rate: float
) -> list[float]:
    runner = asyncio.create_task(dispatcher.run())
    times: dict[str, float] = {}
    try:
        began = time.perf_counter()
        for i in range(count):
            async with db.session() as session:
                event_id = await service.emit(
                    session, type=TYPE, source="/bench", recipient_orgnr=ORG, data={"i": i}
                )
            times[event_id] = time.time()
            pause = began + (i + 1) / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = await arrivals(url)
            if all(e in seen for e in times):
                break
            await asyncio.sleep(0.2)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    return sorted((seen[e] - t) * 1000 for e, t in times.items() if e in seen)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))]


async def measure(args: argparse.Namespace, url: str, hook: str) -> dict[str, Any]:
    db = Database(url)
    await db.upgrade()
    box = SecretBox(secrets.token_bytes(32))
    async with db.session() as session:
        await service.add_subscription(
            session, ORG, hook + "/hook", ["no.felles.portal."], box=box, local_http=True
        )
    dispatcher = Dispatcher(db, box, batch=args.batch, interval=args.poll)
    try:
        wall, inside = await emit_all(db, args.events, args.per_transaction)
        fanned, fan_s = await drain(dispatcher.fan_out)
        delivered, deliver_s = await drain(dispatcher.deliver_due)
        latencies = await latency_phase(db, dispatcher, hook, args.latency_events, args.rate)
    finally:
        await dispatcher.aclose()
        await db.dispose()
    return {
        "events": args.events,
        "per_transaction": args.per_transaction,
        "emit_us_per_event": wall / args.events * 1e6,
        "emit_call_us": inside / args.events * 1e6,
        "fanned_out": fanned,
        "fan_out_per_s": fanned / fan_s,
        "delivered": delivered,
        "deliveries_per_s": delivered / deliver_s,
        "latency_events": len(latencies),
        "latency_rate_per_s": args.rate,
        "poll_seconds": args.poll,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
    }


def table(label: str, row: dict[str, Any]) -> Table:
    out = Table(title=f"Events on {label}")
    for name in ("events", "emit µs/event (tx)", "emit() µs", "fan-out/s", "deliveries/s"):
        out.add_column(name, justify="right")
    out.add_column(f"latency p50/p99 ms at {row['latency_rate_per_s']:.0f}/s", justify="right")
    out.add_row(*cells(row))
    return out


def cells(row: dict[str, Any]) -> list[str]:
    return [
        f"{row['events']:,}",
        f"{row['emit_us_per_event']:.0f}",
        f"{row['emit_call_us']:.0f}",
        f"{row['fan_out_per_s']:,.0f}",
        f"{row['deliveries_per_s']:,.0f}",
        f"{row['latency_p50_ms']:.0f} / {row['latency_p99_ms']:.0f}",
    ]


def markdown(label: str, row: dict[str, Any]) -> str:
    return (
        "| backend | events | emit µs/event (tx) | emit() µs | fan-out/s | deliveries/s "
        f"| latency p50 / p99 ms at {row['latency_rate_per_s']:.0f}/s |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| {label} | " + " | ".join(cells(row)) + " |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-transaction", type=int, default=1, help="Events per transaction.")
    parser.add_argument("--batch", type=int, default=200, help="Dispatcher claim size.")
    parser.add_argument("--latency-events", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0, help="Events/s in the latency phase.")
    parser.add_argument(
        "--poll", type=float, default=1.0, help="Idle wake-up, s (FELLES_EVENTS_POLL_SECONDS)."
    )
    parser.add_argument("--markdown", action="store_true", help="Also print a Markdown table.")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...).")
    args = parser.parse_args()
    console = Console()
    with (
        tempfile.TemporaryDirectory() as folder,
        database(Path(folder)) as (label, url),
        receiver() as hook,
    ):
        row = asyncio.run(measure(args, url, hook))
    console.print(table(label, row))
    if args.markdown:
        print(markdown(label, row))
    backend = "postgresql" if label.startswith("PostgreSQL") else "sqlite"
    output = args.output or HERE / "results" / f"events-{backend}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": label,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "command": " ".join(sys.argv),
        "results": row,
        "markdown": markdown(label, row),
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"Wrote {output}", highlight=False)


if __name__ == "__main__":
    main()
