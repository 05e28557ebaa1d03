"""Portal submissions per second: `python bench/portal.py [--backend both] [--markdown]`.

What a submission costs end to end, as the issue counts it: the person's POST of
`/portal/drafts/{id}/submit` (the whole draft validated against the service's JSON
Schema, a Submission with its reference number, the receipt copy in the inbox, the
`submission.created` event in the outbox, the access decisions logged, the e-mail notice
after the answer), and the receipt PDF the server renders in the background
(`felles.portal.receipts`, every FELLES_RECEIPTS_SECONDS, in a process pool).

Prepared, not timed: a scratch database (SQLite in a temporary folder, or a PostgreSQL
database created here and dropped afterwards), migrated, the demo country seeded, the
example services published; one draft of the kindergarten service started through
`felles.portal.forms.start` for every parent in the register (prefilled from it), filled
(every page done, checked with `forms.submitted_data`), then copied in bulk to `--drafts`
ready drafts, the parents taking turns. Each parent gets a sealed portal session cookie
and there is one CSRF cookie and token, both made with the server's own keys in its data
dir, as the portal's login and the edge would.

Measured: `felles serve` (FELLES_ENV=test, event delivery off: it is measured by
bench/events.py; receipt rendering on, as by default) gets `--concurrency` people in two
load-generator processes (bench/_portal_load.py: httpx transport, keep-alive, no cookie
jar) submitting distinct drafts for `--seconds` or until the drafts run out. Then the
script waits until every receipt PDF is stored. Per run it reports:
- submits/s: 303s to the receipt page / time from the first request to the last answer;
- with receipt/s: submissions / time from the first request until the last receipt PDF
  was stored (`receipt_ready_at`), the figure the issue's target is about;
- p50/p99 of the submit request;
- CPU per submission from /proc over the load and the wait for receipts: the server's
  process tree (workers, the PDF pool's process), PostgreSQL's backends serving it
  (without this script's own polling connection), the load generators;
- it checks that every submission has its `submission.created` event in the outbox and
  its receipt copy in the inbox.
A warm-up (its receipts waited for too) comes first; then `--runs` runs, median and range.

`--statements` (on by default) first submits a few drafts in this process through the
app itself (httpx's ASGI transport), counting SQL statements per submission and per
receipt with SQLAlchemy's `before_cursor_execute`. `--profile` adds one run, not counted,
with py-spy sampling the server (`pip install py-spy`) and prints its top frames.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

import _common as common
import _portal_load

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_PG_URL = os.environ.get("FELLES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVICE = "kindergarten-place"
EVENT_TYPE = "no.felles.portal.submission.created"
TARGET_PER_S = 300
READY_TIMEOUT_S = 60.0
STATEMENT_SAMPLE = 40
DRAFTS_PER_SECOND = 900  # above what one 2-core box submits, so no run runs dry
ANSWERS = {
    "start_date": "2027-08-15",
    "hours": "full",
    "first_choice": "Solsikken barnehage",
    "special_needs": False,
}


# --- Preparing -------------------------------------------------------------------------


@dataclass
class Prepared:
    drafts: list[tuple[str, str]]  # (draft id, sealed session of its person)
    csrf: str
    parents: int


def settings_for(url: str, data_dir: Path, base_url: str = "http://testserver") -> Any:
    from felles.config import Settings

    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=url,
        base_url=base_url,
        events_dispatch=False,
        redis_url=None,
    )


async def prepare(url: str, data_dir: Path, persons: int, count: int) -> Prepared:
    """The scratch database ready for submitting: see the module's docstring."""
    from sqlalchemy import insert, select

    from felles.db import Database
    from felles.demo.service import seed_if_empty
    from felles.identity.crypto import master_key
    from felles.portal import catalogue, forms
    from felles.portal.demo import publish_examples
    from felles.portal.models import Draft, PartyKind
    from felles.portal.session import Party, PortalSession, SessionSealer
    from felles.registry.models import Person, Relation
    from felles.web.keys import load_or_create_secret
    from felles.web.observability import configure_logging
    from felles.web.security import CsrfTokens

    configure_logging("WARNING")  # not every access decision of the preparation
    settings = settings_for(url, data_dir)
    db = Database(settings.resolved_database_url)
    templates: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    try:
        await db.upgrade()
        await seed_if_empty(db, persons=persons, seed=2016)
        await publish_examples(db)
        async with db.session() as session:
            entry = await catalogue.current(session, SERVICE)
            parents = (
                await session.execute(
                    select(Person.pid, Person.given_name, Person.family_name)
                    .where(
                        Person.pid.in_(
                            select(Relation.pid).where(Relation.kind == "child").distinct()
                        )
                    )
                    .order_by(Person.pid)
                )
            ).all()
        for chunk in range(0, len(parents), 200):
            async with db.session() as session:
                for pid, given, family in parents[chunk : chunk + 200]:
                    name = f"{given} {family}"
                    opened = await forms.start(
                        session, entry, pid, Party(PartyKind.person, pid, name)
                    )
                    children = opened.options("child")
                    if not children:
                        continue
                    draft = opened.draft
                    draft.data = {**opened.data, "child": children[0]["value"], **ANSWERS}
                    filled = forms.OpenDraft(draft, entry.definition)
                    draft.pages_done = [
                        p.id for p in forms.visible_pages(entry.definition, filled.data)
                    ] + [forms.ATTACHMENTS]
                    _, problems = forms.submitted_data(filled)
                    if problems or forms.next_step(filled) != forms.CHECK:
                        raise RuntimeError(f"A prepared draft is not ready: {problems}")
                    names[pid] = name
                    templates.append(
                        {
                            c: getattr(draft, c)
                            for c in (
                                "service_code",
                                "service_version",
                                "party_kind",
                                "party_id",
                                "created_by",
                                "data",
                                "prefilled",
                                "pages_done",
                                "created_at",
                                "updated_at",
                            )
                        }
                    )
        if not templates:
            raise RuntimeError("No parent in the demo country: seed more persons")
        drafts: list[tuple[str, str]] = []
        for start in range(0, count, 2000):
            rows = [
                {**templates[i % len(templates)], "id": secrets.token_urlsafe(16), "revision": 0}
                for i in range(start, min(count, start + 2000))
            ]
            async with db.session() as session:
                await session.execute(insert(Draft), rows)
            drafts += [(r["id"], r["created_by"]) for r in rows]
    finally:
        await db.dispose()
    sealer = SessionSealer(master_key(settings))
    now = int(time.time())
    sealed = {
        pid: sealer.seal_session(
            PortalSession(
                pid=pid,
                name=name,
                acr="idporten-loa-substantial",
                sid=secrets.token_urlsafe(8),
                auth_time=now,
                expires_at=now,
                party=Party(PartyKind.person, pid, name),
            ).renewed(now)
        )
        for pid, name in names.items()
    }
    csrf = CsrfTokens(load_or_create_secret(settings.keys_dir / "csrf.key")).new()
    return Prepared([(d, sealed[pid]) for d, pid in drafts], csrf, len(templates))


# --- Counting statements in-process ---------------------------------------------------------


def _shape(sql: str) -> str:
    """A statement without its values, short enough to group by."""
    text = re.sub(r"\s+", " ", sql).strip()
    text = re.sub(r"\(([$?%][^()]*)\)", "(…)", text)
    head = text.split(" WHERE ", 1)[0] if text.upper().startswith("SELECT") else text
    return head[:110]


async def count_statements(url: str, data_dir: Path, prepared: Prepared) -> dict[str, Any]:
    """SQL statements per submit request (with its background e-mail notice) and per
    receipt, through the app in this process. Uses the first STATEMENT_SAMPLE drafts."""
    from sqlalchemy import event

    from felles.app import create_app
    from felles.portal import receipts

    settings = settings_for(url, data_dir).model_copy(update={"log_level": "WARNING"})
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(settings)
    db = app.state.db
    seen: list[str] = []
    transactions = [0]

    def on_statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    def on_commit(_conn: Any) -> None:
        transactions[0] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(db.engine.sync_engine, "commit", on_commit)
    sample = prepared.drafts[:STATEMENT_SAMPLE]
    del prepared.drafts[:STATEMENT_SAMPLE]
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            # The first submit fills the process's caches (definitions, the portal's client).
            first, *rest = sample
            await _submit_in_process(http, first, prepared.csrf)
            seen.clear()
            transactions[0] = 0
            started = time.process_time()
            for draft in rest:
                await _submit_in_process(http, draft, prepared.csrf)
            submit_cpu_ms = (time.process_time() - started) * 1000 / len(rest)
        per_submit = collections.Counter(_shape(s) for s in seen)
        submit_statements, submit_commits = len(seen), transactions[0]
        warm = await receipts.generate_pending(db, limit=1)  # starts the PDF pool's process
        seen.clear()
        transactions[0] = 0
        made = 0
        ticks_before = sum(common.tree_ticks(os.getpid()).values())  # this process and the PDF pool
        while made < len(sample) - warm:  # bounded: each round stores at least one or stops
            got = await receipts.generate_pending(db, limit=len(sample))
            if not got:
                break
            made += got
        receipt_cpu_ms = (
            (sum(common.tree_ticks(os.getpid()).values()) - ticks_before)
            / common.CLK_TCK
            * 1000
            / max(made, 1)
        )
        per_receipt = collections.Counter(_shape(s) for s in seen)
        receipt_statements, receipt_commits = len(seen), transactions[0]
    finally:
        receipts.shutdown_pool()
        await db.dispose()
    n = len(rest)

    def listing(counter: collections.Counter[str], per: int) -> list[dict[str, Any]]:
        return [
            {"statement": shape, "per_operation": round(c / per, 2)}
            for shape, c in counter.most_common()
        ]

    return {
        "submit": {
            "sampled": n,
            "statements": round(submit_statements / n, 2),
            "commits": round(submit_commits / n, 2),
            "in_process_cpu_ms": round(submit_cpu_ms, 2),
            "by_statement": listing(per_submit, n),
        },
        "receipt": {
            "sampled": made,
            "statements": round(receipt_statements / max(made, 1), 2),
            "commits": round(receipt_commits / max(made, 1), 2),
            "in_process_cpu_ms": round(receipt_cpu_ms, 2),
            "by_statement": listing(per_receipt, max(made, 1)),
        },
    }


async def _submit_in_process(http: httpx.AsyncClient, draft: tuple[str, str], csrf: str) -> None:
    draft_id, sealed = draft
    answer = await http.post(
        f"/portal/drafts/{draft_id}/submit",
        data={_portal_load.CSRF_FIELD: csrf},
        headers={
            "cookie": f"{_portal_load.SESSION_COOKIE}={sealed}; {_portal_load.CSRF_COOKIE}={csrf}"
        },
    )
    if answer.status_code != 303 or not answer.headers.get("location", "").endswith("/receipt"):
        raise RuntimeError(f"In-process submit: HTTP {answer.status_code} {answer.text[:300]}")


# --- The database, read between runs -------------------------------------------------------


class Watcher:
    """This script's own connection to the scratch database (its PostgreSQL backend is
    left out of the database's CPU): counts and the time the last receipt was stored."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        sync_url = url.replace("sqlite+aiosqlite", "sqlite")
        if sync_url.startswith("postgresql://"):
            sync_url = "postgresql+psycopg://" + sync_url.split("://", 1)[1]
        self.engine = create_engine(sync_url, poolclass=NullPool)
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.backend_pid: int | None = None
        if self.engine.dialect.name == "postgresql":
            self.backend_pid = int(self.scalar("SELECT pg_backend_pid()"))

    def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        return self.conn.execute(text(sql), params).scalar()

    def counts(self) -> dict[str, Any]:
        return {
            "submissions": int(self.scalar("SELECT count(*) FROM portal_submission")),
            "pending_receipts": int(
                self.scalar("SELECT count(*) FROM portal_submission WHERE receipt_ready_at IS NULL")
            ),
            "events": int(
                self.scalar("SELECT count(*) FROM events_outbox WHERE type = :t", t=EVENT_TYPE)
            ),
            "receipt_messages": int(
                self.scalar("SELECT count(*) FROM portal_message WHERE kind = 'receipt'")
            ),
        }

    def last_receipt_at(self) -> float | None:
        value = self.scalar("SELECT max(receipt_ready_at) FROM portal_submission")
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())

    def wait_for_receipts(self, limit_s: float) -> int:
        """Poll until no receipt is missing (at most `limit_s`); how many still are."""
        deadline = time.monotonic() + limit_s
        while True:
            pending = int(
                self.scalar("SELECT count(*) FROM portal_submission WHERE receipt_ready_at IS NULL")
            )
            if pending == 0 or time.monotonic() >= deadline:
                return pending
            time.sleep(0.1)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


# --- Measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    ok: int
    errors: int
    submissions: int
    submit_seconds: float
    submits_per_s: float
    end_to_end_seconds: float | None
    with_receipt_per_s: float | None
    receipt_lag_s: float | None
    cpu_ms: float | None
    db_cpu_ms: float | None
    loadgen_cpu_ms: float | None
    load_cpu_ms: float | None  # the server's CPU while the load ran (submits, some receipts)
    other_cores: float
    p50_ms: float | None
    p99_ms: float | None
    error_samples: list[str]


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.load = common.LoadProcesses(args.processes, _portal_load.worker_main)

    def close(self) -> None:
        self.load.close()

    @contextlib.contextmanager
    def server(self, url: str, folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        # Receipts at the default pace, as a server has them; event delivery is measured
        # by bench/events.py.
        os.environ.pop("FELLES_RECEIPTS_SECONDS", None)
        proc, port, log = common.start_felles(
            url, folder, self.args.workers, {"FELLES_EVENTS_DISPATCH": "false"}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"The server exited ({proc.returncode}):\n{common.tail(log)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/portal/services", timeout=2.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"The server did not answer within {READY_TIMEOUT_S} s")
                time.sleep(0.2)
            yield proc, base
        finally:
            common.stop_group(proc)
            if self.args.keep_logs:
                RESULTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, RESULTS / f"portal-{folder.name}.log")

    def run(
        self,
        proc: subprocess.Popen[bytes],
        base: str,
        dbname: str | None,
        watcher: Watcher,
        prepared: Prepared,
        seconds: float,
        profile: Path | None = None,
    ) -> Run:
        """One run: submit for `seconds` (or until the drafts run out), then wait for the
        receipts. The drafts used are removed from `prepared`."""
        pipes = self.load.pipes
        n = len(pipes)
        concurrency = self.args.concurrency
        shares = [prepared.drafts[i::n] for i in range(n)]
        before_counts = watcher.counts()
        if before_counts["pending_receipts"]:
            raise RuntimeError("Receipts of an earlier run are still pending")
        start_at = time.time() + 1.0  # time to make the clients
        for i, pipe in enumerate(pipes):
            pipe.send(
                {
                    "base_url": base,
                    "csrf": prepared.csrf,
                    "drafts": shares[i],
                    "clients": concurrency // n + (1 if i < concurrency % n else 0),
                    "start_at": start_at,
                    "deadline": start_at + seconds,
                }
            )
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--subprocesses",
                    "--nonblocking",
                    "--rate",
                    "200",
                    "--duration",
                    str(int(seconds)),
                    "--format",
                    "speedscope",
                    "--output",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def ticks() -> tuple[dict[int, int], dict[int, int], dict[int, int], int]:
            db = common.database_ticks(dbname)
            db.pop(watcher.backend_pid or -1, None)
            return common.tree_ticks(proc.pid), db, self.load.ticks(), common.busy_ticks()

        time.sleep(max(0.0, start_at - time.time()))
        before = ticks()
        results = []
        for pipe in pipes:
            if not pipe.poll(seconds + 90):  # bounded by the request timeouts
                raise RuntimeError("A load generator did not report back")
            result = pipe.recv()
            if "fatal" in result:
                raise RuntimeError(f"A load generator failed: {result['fatal']}")
            results.append(result)
        loaded = ticks()
        last_answer = max(r["last_answer_at"] for r in results)
        # From the first request actually sent (making the clients may outlast the lead).
        firsts = [r["first_request_at"] for r in results if r["first_request_at"]]
        first = min(firsts) if firsts else start_at
        pending = watcher.wait_for_receipts(self.args.receipt_wait)
        after = ticks()
        after_counts = watcher.counts()
        if spy is not None:
            spy.wait(seconds + 60)
        last_receipt = watcher.last_receipt_at()
        taken = {i: r["taken"] for i, r in enumerate(results)}
        used = {d for i, share in enumerate(shares) for d in share[: taken[i]]}
        prepared.drafts = [d for d in prepared.drafts if d not in used]

        ok = sum(r["ok"] for r in results)
        errors = sum(r["errors"] for r in results)
        submitted = after_counts["submissions"] - before_counts["submissions"]
        events = after_counts["events"] - before_counts["events"]
        copies = after_counts["receipt_messages"] - before_counts["receipt_messages"]
        if events != submitted or copies != submitted:
            raise RuntimeError(
                f"{submitted} submissions but {events} submission.created events and "
                f"{copies} receipt copies in the inbox"
            )
        if pending:
            self.console.print(f"  [red]{pending} receipts still missing[/]")
        latencies = sorted(x for r in results for x in r["latencies_ms"])
        submit_s = max(last_answer - first, 1e-3)
        e2e_s = last_receipt - first if last_receipt and submitted and not pending else None
        window_s = max(time.time() - start_at, 1e-3)
        ours = sum(common.ticks_delta(b, a) for b, a in zip(before[:3], after[:3], strict=True))
        other = max(0.0, (after[3] - before[3] - ours) / common.CLK_TCK / window_s)

        def per_sub(ticks_: int) -> float | None:
            return round(ticks_ / common.CLK_TCK * 1000 / submitted, 3) if submitted else None

        return Run(
            ok=ok,
            errors=errors,
            submissions=submitted,
            submit_seconds=round(submit_s, 2),
            submits_per_s=round(ok / submit_s, 1),
            end_to_end_seconds=round(e2e_s, 2) if e2e_s else None,
            with_receipt_per_s=round(submitted / e2e_s, 1) if e2e_s else None,
            receipt_lag_s=round(last_receipt - last_answer, 2) if e2e_s and last_receipt else None,
            cpu_ms=per_sub(common.ticks_delta(before[0], after[0])),
            db_cpu_ms=per_sub(common.ticks_delta(before[1], after[1])) if dbname else None,
            loadgen_cpu_ms=per_sub(common.ticks_delta(before[2], after[2])),
            load_cpu_ms=per_sub(common.ticks_delta(before[0], loaded[0])),
            other_cores=round(other, 2),
            p50_ms=round(v, 1) if (v := common.percentile(latencies, 0.50)) is not None else None,
            p99_ms=round(v, 1) if (v := common.percentile(latencies, 0.99)) is not None else None,
            error_samples=[s for r in results for s in r["error_samples"]][:5],
        )

    def backend(self, backend: str) -> dict[str, Any]:
        args = self.args
        work = Path(tempfile.mkdtemp(prefix=f"felles-bench-portal-{backend}-"))
        try:
            with common.fresh_database(backend, args.pg_url, work, bench="portal") as (url, dbname):
                return self._backend(backend, url, dbname or None, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _backend(self, backend: str, url: str, dbname: str | None, work: Path) -> dict[str, Any]:
        args, console = self.args, self.console
        folder = work / backend
        folder.mkdir()
        data_dir = folder / "var"
        started = time.perf_counter()
        prepared = asyncio.run(prepare(url, data_dir, args.persons, args.drafts))
        console.print(
            f"  prepared {len(prepared.drafts):,} drafts of {prepared.parents:,} parents "
            f"in {time.perf_counter() - started:.1f} s"
        )
        statements = None
        if args.statements:
            statements = asyncio.run(count_statements(url, data_dir, prepared))
            s, r = statements["submit"], statements["receipt"]
            console.print(
                f"  in-process: {s['statements']} SQL statements and {s['commits']} commits "
                f"per submit ({s['in_process_cpu_ms']} ms CPU with the client), "
                f"{r['statements']} statements and {r['in_process_cpu_ms']} ms CPU per receipt "
                "(this process and the PDF pool's)",
                highlight=False,
            )
        if args.quiet_wait:
            common.wait_for_quiet(args.quiet_wait, console)
        watcher = Watcher(url)
        runs: list[Run] = []
        profile: dict[str, Any] | None = None
        try:
            with self.server(url, folder) as (proc, base):
                if args.warmup:
                    warm = self.run(proc, base, dbname, watcher, prepared, args.warmup)
                    self.report(f"warm-up ({args.warmup:g} s)", warm)
                for i in range(args.runs):
                    if not prepared.drafts:
                        console.print("  [red]out of drafts: use --drafts[/]")
                        break
                    run = self.run(proc, base, dbname, watcher, prepared, args.seconds)
                    self.report(f"run {i + 1}/{args.runs}", run)
                    if not prepared.drafts and run.submit_seconds < 0.95 * args.seconds:
                        console.print("  [red]cut short, out of drafts: not counted[/]")
                        break
                    runs.append(run)
                if args.profile and prepared.drafts:
                    path = RESULTS / f"{stem(backend, args.workers)}.speedscope.json"
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    run = self.run(proc, base, dbname, watcher, prepared, args.seconds, path)
                    self.report("profiled run (not counted)", run)
                    profile = {"file": str(path.relative_to(HERE.parent)), **top_frames(path)}
        finally:
            watcher.close()
        return {
            "backend": backend,
            "workers": args.workers,
            "drafts_prepared": args.drafts,
            "parents": prepared.parents,
            **summarise(runs),
            "runs": [asdict(r) for r in runs],
            "statements": statements,
            "profile": profile,
        }

    def report(self, what: str, run: Run) -> None:
        self.console.print(
            f"  {what}: {run.submissions:,} submissions, {run.submits_per_s:,.0f} submits/s, "
            f"{run.with_receipt_per_s or 0:,.0f}/s with receipt (lag {run.receipt_lag_s} s), "
            f"p50 {run.p50_ms} ms, p99 {run.p99_ms} ms, server {run.cpu_ms} ms CPU"
            + (f" + DB {run.db_cpu_ms}" if run.db_cpu_ms is not None else "")
            + f" + load {run.loadgen_cpu_ms} per submission"
            + (f", other load {run.other_cores} cores" if run.other_cores > 0.1 else "")
            + (f", [red]{run.errors} errors[/]" if run.errors else ""),
            highlight=False,
        )
        for sample in run.error_samples[:2]:
            self.console.print(f"    [red]{markup_escape(sample)}[/]", highlight=False)


def summarise(runs: list[Run]) -> dict[str, Any]:
    keys = [
        "submits_per_s",
        "with_receipt_per_s",
        "receipt_lag_s",
        "p50_ms",
        "p99_ms",
        "cpu_ms",
        "load_cpu_ms",
        "db_cpu_ms",
        "loadgen_cpu_ms",
        "other_cores",
    ]
    return {
        **{k: common.median_range([getattr(r, k) for r in runs]) for k in keys},
        "submissions": sum(r.submissions for r in runs),
        "errors": sum(r.errors for r in runs),
    }


# --- The profile ----------------------------------------------------------------------------


def top_frames(path: Path, most: int = 15) -> dict[str, Any]:
    """Where the server's samples went (py-spy's speedscope file, every process and
    thread together, idle samples left out): the functions with the most samples of
    their own, and the Felles functions with the most samples below them."""
    if not path.exists():
        return {"error": "py-spy wrote no profile (is it installed? may it ptrace?)"}
    data = json.loads(path.read_text())
    # One key per function (py-spy makes a frame per line).
    keys = [
        f"{f['name']} ({f.get('file', '').split('site-packages/')[-1].split('/src/')[-1]})"
        for f in data["shared"]["frames"]
    ]
    own: collections.Counter[str] = collections.Counter()
    below: collections.Counter[str] = collections.Counter()
    total = 0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            total += weight
            own[keys[stack[-1]]] += weight
            for key in {keys[i] for i in stack}:
                below[key] += weight

    felles = [k for k, _ in below.most_common() if "(felles/" in k]
    if not total:
        return {"busy_samples": 0, "own": [], "felles_inclusive": []}
    return {
        "busy_samples": total,
        "own": [
            {"frame": k, "percent": round(100 * c / total, 1)} for k, c in own.most_common(most)
        ],
        "felles_inclusive": [
            {"frame": k, "percent": round(100 * below[k] / total, 1)} for k in felles[: most * 2]
        ],
    }


# --- Reporting -------------------------------------------------------------------------------

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
COLUMNS = [
    ("submits/s", "submits_per_s", 0, True),
    ("with receipt PDF/s", "with_receipt_per_s", 0, True),
    ("p50 ms", "p50_ms", 0, False),
    ("p99 ms", "p99_ms", 0, True),
    ("server CPU ms/sub", "cpu_ms", 2, True),
    ("+ PostgreSQL ms/sub", "db_cpu_ms", 2, False),
    ("load gen ms/sub", "loadgen_cpu_ms", 2, False),
]


def stem(backend: str, workers: int) -> str:
    """bench/results/portal-<backend>.json, with -w<N> for more than one worker."""
    return f"portal-{backend}" + (f"-w{workers}" if workers > 1 else "")


def label(row: dict[str, Any]) -> str:
    workers = row["workers"]
    return f"{NAMES[row['backend']]}, {workers} worker{'s' if workers > 1 else ''}"


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    out = Table(
        title=f"Portal submissions ({SERVICE}): median of {args.runs} × {args.seconds:g} s runs "
        f"(range), {args.concurrency} people in {args.processes} load-generator processes",
        caption="with receipt PDF/s = submissions / (first submit → last receipt PDF stored); "
        "CPU per submission over the load and the wait for receipts",
    )
    out.add_column("server", no_wrap=True)
    for title, *_ in COLUMNS:
        out.add_column(title, justify="right", no_wrap=True)
    out.add_column("submissions", justify="right")
    out.add_column("errors", justify="right")
    for row in rows:
        out.add_row(
            label(row),
            *(common.fmt(row[key], digits, ranged) for _, key, digits, ranged in COLUMNS),
            f"{row['submissions']:,}",
            str(row["errors"]),
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The same table in Markdown, for docs/benchmarks.md."""
    lines = [
        "| server | " + " | ".join(t for t, *_ in COLUMNS) + " | statements/submit | errors |",
        "|---|" + "---:|" * (len(COLUMNS) + 2),
    ]
    for row in rows:
        statements = (row.get("statements") or {}).get("submit", {}).get("statements", "-")
        cells = [common.fmt(row[key], digits, ranged) for _, key, digits, ranged in COLUMNS]
        lines.append(
            f"| {label(row)} | " + " | ".join(cells) + f" | {statements} | {row['errors']} |"
        )
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    pg = next((r for r in rows if r["backend"] == "postgresql"), None)
    if pg is None or not pg["with_receipt_per_s"]:
        return None
    rate = pg["with_receipt_per_s"]["median"]
    return {
        "target_per_s": TARGET_PER_S,
        "with_receipt_per_s": rate,
        "submits_per_s": (pg["submits_per_s"] or {}).get("median"),
        "met": rate >= TARGET_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    common.add_load_options(
        parser, "backend", 3.0, 32, "People submitting at once", 3000, DEFAULT_PG_URL
    )
    parser.add_argument(
        "--drafts",
        type=int,
        default=None,
        help=f"Ready drafts per backend (default: {DRAFTS_PER_SECOND}/s of warm-up and runs).",
    )
    parser.add_argument("--workers", type=int, default=1, help="felles serve --workers.")
    parser.add_argument(
        "--receipt-wait", type=float, default=300.0, help="Longest wait for receipts after a run."
    )
    parser.add_argument(
        "--statements",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Count SQL statements per submit and per receipt in-process first.",
    )
    parser.add_argument("--profile", action="store_true", help="One more run under py-spy.")
    args = parser.parse_args()
    common.check_load_options(parser, args)
    if args.drafts is None:  # enough for every run at full speed: a cut-short run is no run
        timed = args.warmup + args.seconds * (args.runs + args.profile)
        args.drafts = min(200_000, max(100, math.ceil(DRAFTS_PER_SECOND * timed)))
    if not (100 <= args.drafts <= 200_000 and 1 <= args.workers <= 8):
        parser.error("--drafts 100-200000 and --workers 1-8")

    console = Console()
    if not console.is_terminal and console.width < 200:
        console = Console(width=200)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    load_average = os.getloadavg()[0]
    bench = Bench(args, console)
    rows = []
    try:
        for backend in backends:
            console.print(f"[bold]{NAMES[backend]}, {args.workers} worker(s)[/]")
            began = time.perf_counter()
            row = bench.backend(backend)
            rows.append(row)
            report = {
                **common.report_head("portal", began, load_average),
                "method": {
                    "service": SERVICE,
                    **common.load_method(args),
                    "cpu": "utime+stime from /proc/<pid>/stat over the load and the wait for "
                    "receipts: the server's process tree (incl. the receipt PDF pool), the "
                    "PostgreSQL backends of its database, the load generators",
                },
                "target": verdict([row]),
                "result": row,
                "markdown": markdown([row]),
            }
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{stem(backend, args.workers)}.json").write_text(
                json.dumps(report, indent=2) + "\n"
            )
    finally:
        bench.close()

    console.print(table(rows, args))
    if args.markdown:
        console.print(markdown(rows), markup=False, highlight=False)
    for row in rows:
        if row.get("profile"):
            console.print(f"[bold]{label(row)}: py-spy, share of busy samples[/]")
            for item in row["profile"].get("own", [])[:12]:
                console.print(f"  own {item['percent']:5.1f} %  {item['frame']}", highlight=False)
            for item in row["profile"].get("felles_inclusive", [])[:20]:
                console.print(f"  incl {item['percent']:5.1f} %  {item['frame']}", highlight=False)
    if (v := verdict(rows)) is not None:
        console.print(f"target {TARGET_PER_S}/s on PostgreSQL: {json.dumps(v)}", highlight=False)
    console.print(
        "Wrote " + ", ".join(f"bench/results/{stem(b, args.workers)}.json" for b in backends),
        highlight=False,
    )


if __name__ == "__main__":
    main()
