"""Felles' login service against node oidc-provider: `python bench/identity.py [--full]`.

Both servers run on this machine, one at a time, in one run of this script, and get the
same load (BENCHMARKING.md): two load-generator processes (bench/_load.py, httpx async,
keep-alive, no cookie jar) with 16 concurrent clients in all, a warm-up, then three
10-second runs per scenario. For each run it records operations per second on the box
(load generator included), server CPU milliseconds per operation (utime + stime from
/proc/<pid>/stat of the server and every process under it, e.g. uvicorn's workers; on
PostgreSQL also the database backends serving the server, reported apart), and p50/p99
latency of the whole operation. The table and bench/results/identity.json give the
median of the runs with their range; bench/results/identity.svg draws them.

Scenarios:
- discovery: GET /.well-known/openid-configuration, then GET its jwks_uri.
- jwt_bearer (Felles): POST /token with an RFC 7523 JWT bearer grant signed ES256 by
  the client's key (Maskinporten's way). The peer has no such grant; its closest
  equivalent is client_credentials with private_key_jwt, measured as the peer's row.
- client_credentials: POST /token, grant_type=client_credentials, the client
  authenticated with private_key_jwt (an ES256 client assertion).
- code_flow: PAR (client_secret_basic) → GET /authorize?client_id&request_uri, which
  logs the person in headless from the pushed `login_hint=testid:<pid>_<acr>` and
  answers 303 with the code → POST /token (authorization_code + PKCE, ES256 ID token)
  → GET /userinfo (scope "openid profile"). How the peer logs in headless is described
  in bench/peers/oidc-provider/server.mjs.

Felles runs as the real `felles serve` (FELLES_ENV=test) on a fresh PostgreSQL database
(created here and dropped afterwards) and on SQLite in a fresh data dir, each with the
demo country seeded and the clients registered through the service layer, with 1 and
with 2 workers. The peer is oidc-provider (pinned in bench/peers/oidc-provider) on node,
one process, installed with `npm ci` there if node_modules is missing. Its official row
("peer") keeps its state in oidc-provider's default in-memory adapter; a second, labelled
row ("peer-pg", "PostgreSQL adapter") runs the same peer with its state in PostgreSQL
(bench/peers/oidc-provider/pg-adapter.mjs) on a fresh database made as Felles' is, to
show what durable state costs the peer: client_credentials and code_flow by default.

The default plan takes about seven minutes; --full measures every scenario on every
setup (about twelve). --only peer keeps both peer rows, --setups picks setups by name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
from joserfc.jwk import ECKey
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

import _load
from _common import (
    CLK_TCK,
    LoadProcesses,
    add_load_options,
    busy_ticks,
    check_load_options,
    database_sessions,
    database_ticks,
    fmt,
    free_port,
    fresh_database,
    load_method,
    median_range,
    percentile,
    report_head,
    start_felles,
    stop_group,
    tail,
    ticks_delta,
    tree_ticks,
    wait_for_quiet,
)

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "peers" / "oidc-provider"
RESULTS = HERE / "results" / "identity.json"
CHART = HERE / "results" / "identity.svg"
DEFAULT_PG_URL = os.environ.get("FELLES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIRECT_URI = "http://127.0.0.1:8400/callback"  # never visited: the 303 is the answer
MACHINE_SCOPE = "felles:bench.read"
PEOPLE_SCOPE = "openid profile"
ACR = "idporten-loa-substantial"
READY_TIMEOUT_S = 60.0

SCENARIO_TITLES = {
    "discovery": "discovery + JWKS",
    "jwt_bearer": "machine token: JWT bearer grant (RFC 7523)",
    "client_credentials": "machine token: client_credentials + private_key_jwt",
    "code_flow": "full code flow: PAR, authorize, token, userinfo",
}
ALL_FELLES = ["discovery", "jwt_bearer", "client_credentials", "code_flow"]
PEER_SCENARIOS = ["discovery", "client_credentials", "code_flow"]
# (setup, scenarios): interleaved so that a drift of the machine over the run does not
# land on one server only. About seven minutes with 10 s runs. "peer" is oidc-provider
# with its in-memory state (the official comparison), "peer-pg" the same peer with its
# state in PostgreSQL.
DEFAULT_PLAN: list[tuple[str, list[str]]] = [
    ("felles-pg-w1", ALL_FELLES),
    ("peer", PEER_SCENARIOS),
    ("felles-pg-w2", ["jwt_bearer", "code_flow"]),
    ("peer-pg", ["client_credentials", "code_flow"]),
    ("felles-sqlite-w1", ["code_flow"]),
    ("felles-sqlite-w2", ["code_flow"]),
]
FULL_PLAN: list[tuple[str, list[str]]] = [
    ("felles-pg-w1", ALL_FELLES),
    ("peer", PEER_SCENARIOS),
    ("felles-pg-w2", ALL_FELLES),
    ("peer-pg", PEER_SCENARIOS),
    ("felles-sqlite-w1", ALL_FELLES),
    ("felles-sqlite-w2", ALL_FELLES),
]


PEER_SETUPS = ("peer", "peer-pg")


def is_peer(setup: str) -> bool:
    return setup in PEER_SETUPS


def label(setup: str) -> str:
    if setup == "peer":
        return f"oidc-provider {peer_version()} (node {node_version()}, 1 process)"
    if setup == "peer-pg":
        return (
            f"oidc-provider {peer_version()}, PostgreSQL adapter "
            f"(node {node_version()}, 1 process, pg {peer_version('pg')})"
        )
    _, backend, workers = setup.split("-")
    name = "PostgreSQL" if backend == "pg" else "SQLite"
    return f"Felles, {name}, {workers[1:]} worker{'s' if workers != 'w1' else ''}"


# --- Processes and CPU -----------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> dict[str, Any]:
    """The discovery document, once the server answers; fails if the server dies."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"The server exited ({proc.returncode}); see {log}:\n" + tail(log))
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                doc = dict(response.json())
                # As a relying party would: fetch the keys once (this also fills the
                # server's key cache before the load starts).
                httpx.get(doc["jwks_uri"], timeout=5.0).raise_for_status()
                return doc
        time.sleep(0.2)
    raise RuntimeError(f"The server did not answer {url} within {READY_TIMEOUT_S:.0f} s")


# --- Felles ----------------------------------------------------------------------------


async def prepare_felles(url: str, persons: int, machine_jwk: dict[str, Any]) -> dict[str, Any]:
    """Seed the demo country and register the clients and the scope (service layer)."""
    from felles.db import Database
    from felles.demo.service import seed_country
    from felles.identity import clients
    from felles.identity.clients import NewClient
    from felles.registry import service as registry

    db = Database(url)
    try:
        await db.upgrade()
        await seed_country(db, persons=persons, seed=2016)
        async with db.session() as session:
            agencies = await registry.list_organisations(session, limit=10, form="STAT")
            if len(agencies) < 2:
                raise RuntimeError("The demo country has fewer than two agencies (form STAT)")
            owner, consumer = agencies[0].orgnr, agencies[1].orgnr
            await clients.add_scope(
                session, MACHINE_SCOPE, owner_orgnr=owner, description="Benchmark API"
            )
            await clients.grant_scope(session, MACHINE_SCOPE, consumer)
            web, secret = await clients.add_client(
                session,
                NewClient(
                    name="Benchmark web service",
                    redirect_uris=[REDIRECT_URI],
                    scopes=PEOPLE_SCOPE.split(),
                    grant_types=["authorization_code"],
                    auth_method="client_secret_basic",
                    id_token_alg="ES256",  # noqa: S106 - an algorithm, not a password
                ),
            )
            jwks = {"keys": [machine_jwk]}
            bearer, _ = await clients.add_client(
                session,
                NewClient(
                    name="Benchmark agency server (JWT bearer)",
                    orgnr=consumer,
                    auth_method="private_key_jwt",
                    jwks=jwks,
                    scopes=[MACHINE_SCOPE],
                    grant_types=[_load.JWT_BEARER],
                ),
            )
            cc, _ = await clients.add_client(
                session,
                NewClient(
                    name="Benchmark agency server (client credentials)",
                    orgnr=consumer,
                    auth_method="private_key_jwt",
                    jwks=jwks,
                    scopes=[MACHINE_SCOPE],
                    grant_types=["client_credentials"],
                ),
            )
            people = await registry.list_people(session, limit=persons)
    finally:
        await db.dispose()
    assert secret is not None
    return {
        "web_client_id": web.client_id,
        "web_client_secret": secret,
        "machine_client_id": bearer.client_id,
        "machine_cc_client_id": cc.client_id,
        "people": [
            {
                "pid": p.pid,
                "name": p.full_name,
                "given_name": " ".join(n for n in (p.given_name, p.middle_name) if n),
                "family_name": p.family_name,
                "birthdate": p.birth_date.isoformat(),
            }
            for p in people
        ],
    }


# --- The peer --------------------------------------------------------------------------


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def peer_version(package: str = "oidc-provider") -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        path = PEER_DIR / "node_modules" / package / "package.json"
        return str(json.loads(path.read_text())["version"])
    return "?"


def ensure_peer_installed(console: Console) -> None:
    wanted = json.loads((PEER_DIR / "package.json").read_text())["dependencies"]
    if all((PEER_DIR / "node_modules" / name).is_dir() for name in wanted):
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("node and npm are needed for the peer (or use --only felles)")
    console.print("Installing the peer with npm ci (pinned in package-lock.json)...")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=PEER_DIR,
        check=True,
        timeout=300,
    )


# --- Measuring -------------------------------------------------------------------------


@dataclass
class Server:
    setup: str
    proc: subprocess.Popen[bytes]
    target: dict[str, Any]
    dbname: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    ok: int
    errors: int
    seconds: float
    ops_per_s: float
    cpu_ms_per_op: float | None
    db_cpu_ms_per_op: float | None
    loadgen_cpu_ms_per_op: float | None
    other_cores: float
    db_connections_per_1000_ops: float | None
    p50_ms: float | None
    p99_ms: float | None
    steps_p50_ms: dict[str, float]
    error_samples: list[str]


class LoadGenerators(LoadProcesses):
    """Long-lived load-generator processes (spawned once, reused for every run)."""

    def __init__(self, processes: int, pg_admin_url: str) -> None:
        super().__init__(processes, _load.worker_main)
        self.pg_admin_url = pg_admin_url

    def run(
        self, server: Server, scenario: str, seconds: float, concurrency: int, measure: bool
    ) -> Run:
        n = len(self.pipes)
        shares = [concurrency // n + (1 if i < concurrency % n else 0) for i in range(n)]
        sessions_before = database_sessions(server.dbname, self.pg_admin_url)
        start_at = time.time() + 0.3
        for pipe, clients in zip(self.pipes, shares, strict=True):
            pipe.send(
                {
                    "target": server.target,
                    "scenario": scenario,
                    "clients": clients,
                    "start_at": start_at,
                    "seconds": seconds,
                }
            )
        time.sleep(max(0.0, start_at - time.time()))
        before = (
            tree_ticks(server.proc.pid),
            database_ticks(server.dbname),
            self.ticks(),
            busy_ticks(),
        )
        time.sleep(max(0.0, start_at + seconds - time.time()))
        after = (
            tree_ticks(server.proc.pid),
            database_ticks(server.dbname),
            self.ticks(),
            busy_ticks(),
        )
        ours = sum(ticks_delta(b, a) for b, a in zip(before[:3], after[:3], strict=True))
        other_cores = max(0.0, (after[3] - before[3] - ours) / CLK_TCK / seconds)
        sessions_after = database_sessions(server.dbname, self.pg_admin_url)
        results = []
        for pipe in self.pipes:
            if not pipe.poll(seconds + 90):  # bounded by the request timeouts in _load
                raise RuntimeError("A load generator did not report back")
            result = pipe.recv()
            if "fatal" in result:
                raise RuntimeError(f"A load generator failed: {result['fatal']}")
            results.append(result)
        ok = sum(r["ok"] for r in results)
        errors = sum(r["errors"] for r in results)
        latencies = sorted(x for r in results for x in r["latencies_ms"])
        steps: dict[str, list[float]] = {}
        for r in results:
            for name, values in r["steps_ms"].items():
                steps.setdefault(name, []).extend(values)

        def per_op(ticks: int) -> float | None:
            return round(ticks / CLK_TCK * 1000 / ok, 3) if ok and measure else None

        return Run(
            ok=ok,
            errors=errors,
            seconds=seconds,
            ops_per_s=round(ok / seconds, 1),
            cpu_ms_per_op=per_op(ticks_delta(before[0], after[0])),
            db_cpu_ms_per_op=per_op(ticks_delta(before[1], after[1])) if server.dbname else None,
            loadgen_cpu_ms_per_op=per_op(ticks_delta(before[2], after[2])),
            other_cores=round(other_cores, 2),
            db_connections_per_1000_ops=(
                round((sessions_after - sessions_before) * 1000 / ok, 2)
                if ok and sessions_after is not None and sessions_before is not None
                else None
            ),
            p50_ms=round(v, 2) if (v := percentile(latencies, 0.50)) is not None else None,
            p99_ms=round(v, 2) if (v := percentile(latencies, 0.99)) is not None else None,
            steps_p50_ms={
                name: round(percentile(sorted(v), 0.5) or 0.0, 2) for name, v in steps.items()
            },
            error_samples=[s for r in results for s in r["error_samples"]][:5],
        )


def summarise(runs: list[Run]) -> dict[str, Any]:
    return {
        "ops_per_s": median_range([r.ops_per_s for r in runs]),
        "cpu_ms_per_op": median_range([r.cpu_ms_per_op for r in runs]),
        "db_cpu_ms_per_op": median_range([r.db_cpu_ms_per_op for r in runs]),
        "loadgen_cpu_ms_per_op": median_range([r.loadgen_cpu_ms_per_op for r in runs]),
        "other_load_cores": median_range([r.other_cores for r in runs]),
        "db_connections_per_1000_ops": median_range([r.db_connections_per_1000_ops for r in runs]),
        "p50_ms": median_range([r.p50_ms for r in runs]),
        "p99_ms": median_range([r.p99_ms for r in runs]),
        "errors": sum(r.errors for r in runs),
        "operations": sum(r.ok for r in runs),
    }


# --- Setups ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.key = ECKey.generate_key(
            "P-256", {"kid": "bench-machine-1", "alg": "ES256", "use": "sig"}, private=True
        )
        self.people: list[dict[str, Any]] | None = None
        self.work = Path(tempfile.mkdtemp(prefix="felles-bench-identity-"))

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def base_target(self, doc: dict[str, Any], people: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "issuer": doc["issuer"],
            "discovery_url": doc["issuer"] + "/.well-known/openid-configuration",
            "token_endpoint": doc["token_endpoint"],
            "par_endpoint": doc["pushed_authorization_request_endpoint"],
            "authorization_endpoint": doc["authorization_endpoint"],
            "userinfo_endpoint": doc["userinfo_endpoint"],
            "redirect_uri": REDIRECT_URI,
            "scope": PEOPLE_SCOPE,
            "login_hints": [f"testid:{p['pid']}_{ACR}" for p in people],
            "machine_key": dict(self.key.as_dict(private=True)),
            "machine_scope": MACHINE_SCOPE,
        }

    @contextlib.contextmanager
    def felles(self, setup: str) -> Iterator[Server]:
        _, backend, workers = setup.split("-")
        folder = self.work / setup
        folder.mkdir()
        kind = "sqlite" if backend == "sqlite" else "pg"
        with fresh_database(kind, self.args.pg_url, folder) as (url, dbname):
            made = asyncio.run(prepare_felles(url, self.args.persons, self.public_jwk()))
            if self.people is None:
                self.people = made["people"]
            proc, port, log = start_felles(url, folder, int(workers[1:]))
            try:
                doc = wait_ready(
                    proc, f"http://127.0.0.1:{port}/.well-known/openid-configuration", log
                )
                target = {
                    **self.base_target(doc, made["people"]),
                    "web_client_id": made["web_client_id"],
                    "web_client_secret": made["web_client_secret"],
                    "machine_client_id": made["machine_client_id"],
                    "machine_cc_client_id": made["machine_cc_client_id"],
                }
                yield Server(setup, proc, target, dbname or None)
            finally:
                stop_group(proc)
                if self.args.keep_logs:
                    shutil.copy(log, RESULTS.parent / f"identity-{setup}.log")

    @contextlib.contextmanager
    def peer(self, setup: str) -> Iterator[Server]:
        """The peer; for "peer-pg" with its state in a fresh PostgreSQL database."""
        database: contextlib.AbstractContextManager[tuple[str, str]] = (
            fresh_database("pg", self.args.pg_url, self.work, prefix="peer")
            if setup == "peer-pg"
            else contextlib.nullcontext(("", ""))
        )
        with database as (url, name), self._peer(setup, url or None, name or None) as server:
            yield server

    @contextlib.contextmanager
    def _peer(self, setup: str, database_url: str | None, dbname: str | None) -> Iterator[Server]:
        ensure_peer_installed(self.console)
        if self.people is None:  # the same synthetic people as Felles' register
            with fresh_database("sqlite", self.args.pg_url, self.work) as (url, _):
                made = asyncio.run(prepare_felles(url, self.args.persons, self.public_jwk()))
            self.people = made["people"]
        port = free_port()
        secret = secrets.token_urlsafe(32)
        config: dict[str, Any] = {
            "port": port,
            "people": self.people,
            "web_client": {
                "client_id": "bench-web",
                "client_secret": secret,
                "redirect_uri": REDIRECT_URI,
            },
            "machine_client": {"client_id": "bench-machine", "jwk": self.public_jwk()},
            "machine_scope": MACHINE_SCOPE,
        }
        if database_url:
            config["database_url"] = database_url
        config_path = self.work / f"{setup}.json"
        config_path.write_text(json.dumps(config))
        log = self.work / f"{setup}.log"
        node = shutil.which("node") or "node"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [node, str(PEER_DIR / "server.mjs"), str(config_path)],
                cwd=PEER_DIR,
                env={**os.environ, "NODE_ENV": "production"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            doc = wait_ready(proc, f"http://127.0.0.1:{port}/.well-known/openid-configuration", log)
            target = {
                **self.base_target(doc, self.people),
                "web_client_id": "bench-web",
                "web_client_secret": secret,
                "machine_client_id": "bench-machine",
                "machine_cc_client_id": "bench-machine",
            }
            yield Server(setup, proc, target, dbname)
        finally:
            stop_group(proc)
            if self.args.keep_logs:
                shutil.copy(log, RESULTS.parent / f"identity-{setup}.log")


def measure(
    bench: Bench, load: LoadGenerators, plan: list[tuple[str, list[str]]]
) -> list[dict[str, Any]]:
    args, console = bench.args, bench.console
    rows: list[dict[str, Any]] = []
    for setup, scenarios in plan:
        console.print(f"[bold]{label(setup)}[/]")
        if args.quiet_wait:
            wait_for_quiet(args.quiet_wait, console)
        started = time.perf_counter()
        server_cm = bench.peer(setup) if is_peer(setup) else bench.felles(setup)
        with server_cm as server:
            console.print(f"  ready in {time.perf_counter() - started:.1f} s")
            for scenario in scenarios:
                warm = load.run(server, scenario, args.warmup, args.concurrency, measure=False)
                if warm.errors or not warm.ok:
                    sample = markup_escape("; ".join(warm.error_samples[:1]))
                    console.print(
                        f"  {scenario} warm-up: {warm.ok} operations, "
                        f"[red]{warm.errors} errors[/] {sample}",
                        highlight=False,
                    )
                runs = []
                for i in range(args.runs):
                    run = load.run(server, scenario, args.seconds, args.concurrency, measure=True)
                    runs.append(run)
                    console.print(
                        f"  {scenario} run {i + 1}/{args.runs}: {run.ops_per_s:,.0f} ops/s, "
                        f"{run.cpu_ms_per_op} ms CPU/op"
                        + (f" (+{run.db_cpu_ms_per_op} DB)" if run.db_cpu_ms_per_op else "")
                        + f", p50 {run.p50_ms} ms, p99 {run.p99_ms} ms"
                        + (f", other load {run.other_cores} cores" if run.other_cores > 0.1 else "")
                        + (f", [red]{run.errors} errors[/]" if run.errors else ""),
                        highlight=False,
                    )
                    for sample in run.error_samples[:2]:
                        console.print(f"    [red]{markup_escape(sample)}[/]", highlight=False)
                rows.append(
                    {
                        "setup": setup,
                        "server": label(setup),
                        "scenario": scenario,
                        "title": SCENARIO_TITLES[scenario],
                        **summarise(runs),
                        "runs": [asdict(r) for r in runs],
                    }
                )
    return rows


# --- Reporting -------------------------------------------------------------------------


GROUPS = {
    "discovery": "discovery + JWKS",
    "jwt_bearer": "machine token",
    "client_credentials": "machine token",
    "code_flow": "full code flow",
}
HOW = {
    "discovery": "GET discovery, GET jwks_uri",
    "jwt_bearer": "JWT bearer grant (RFC 7523)",
    "client_credentials": "client_credentials + private_key_jwt",
    "code_flow": "PAR, authorize, token, userinfo",
}
GRANT = {"jwt_bearer": "JWT bearer grant", "client_credentials": "client_credentials"}
FLOW = {
    "discovery": "discovery + JWKS",
    "jwt_bearer": "machine token: JWT bearer grant",
    "client_credentials": "machine token: client_credentials",
    "code_flow": "full code flow",
}
SETUP_ORDER = [
    "peer",
    "peer-pg",
    "felles-pg-w1",
    "felles-pg-w2",
    "felles-sqlite-w1",
    "felles-sqlite-w2",
]


def short_label(setup: str) -> str:
    if setup == "peer":
        return f"oidc-provider {peer_version()}"
    if setup == "peer-pg":
        return f"oidc-provider {peer_version()}, PostgreSQL adapter"
    _, backend, workers = setup.split("-")
    name = "PostgreSQL" if backend == "pg" else "SQLite"
    return f"Felles, {name}, {workers[1:]} worker{'s' if workers != 'w1' else ''}"


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grouped by flow; in a group the peer first (in memory, then on PostgreSQL), then
    Felles' setups; the peer's client_credentials rows stand in the machine-token group
    beside the JWT bearer grant."""
    groups = list(dict.fromkeys(GROUPS.values()))
    scenarios = list(SCENARIO_TITLES)

    def key(row: dict[str, Any]) -> tuple[int, int, int]:
        return (
            groups.index(GROUPS[row["scenario"]]),
            scenarios.index(row["scenario"]) if not is_peer(row["setup"]) else -1,
            SETUP_ORDER.index(row["setup"]) if row["setup"] in SETUP_ORDER else 99,
        )

    return sorted(rows, key=key)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    out = Table(
        title=f"Identity: Felles vs oidc-provider — median of {args.runs} × {args.seconds:g} s "
        f"runs (range), {args.concurrency} clients in {args.processes} load-generator processes",
        caption="server CPU = the server's processes; + PostgreSQL = the database backends "
        "serving Felles or the peer's PostgreSQL adapter; other load = CPU used on the box by "
        "anything else during the runs",
    )
    for name in (
        "flow",
        "server",
        "ops/s on the box",
        "server CPU ms/op",
        "+ PostgreSQL ms/op",
        "p50 ms",
        "p99 ms",
        "errors",
        "other load",
    ):
        numeric = name not in ("flow", "server")
        out.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    last = None
    for row in ordered(rows):
        group = GROUPS[row["scenario"]]
        if last is not None and group != last:
            out.add_section()
        out.add_row(
            FLOW[row["scenario"]],
            short_label(row["setup"]),
            fmt(row["ops_per_s"]),
            fmt(row["cpu_ms_per_op"], 2),
            fmt(row["db_cpu_ms_per_op"], 2, ranged=False),
            fmt(row["p50_ms"], 1, ranged=False),
            fmt(row["p99_ms"], 0),
            str(row["errors"]),
            fmt(row["other_load_cores"], 2, ranged=False),
        )
        last = group
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The same table in Markdown, for docs/benchmarks.md."""
    lines = [
        "| flow | how | server | ops/s on the box | server CPU ms/op | + PostgreSQL ms/op "
        "| p50 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ordered(rows):
        lines.append(
            f"| {GROUPS[row['scenario']]} | {HOW[row['scenario']]} | {short_label(row['setup'])} "
            f"| {fmt(row['ops_per_s'])} | {fmt(row['cpu_ms_per_op'], 2)} "
            f"| {fmt(row['db_cpu_ms_per_op'], 2, ranged=False)} "
            f"| {fmt(row['p50_ms'], 1, ranged=False)} | {fmt(row['p99_ms'], 0)} "
            f"| {row['errors']} |"
        )
    return "\n".join(lines) + "\n"


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, judged on the code flow."""

    def find(setup: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["setup"] == setup and r["scenario"] == "code_flow"), None)

    peer = find("peer")
    verdict: dict[str, Any] = {}
    if peer and peer["cpu_ms_per_op"]:
        peer_cpu = peer["cpu_ms_per_op"]["median"]
        per_setup = {}
        for setup in ("felles-pg-w1", "felles-pg-w2", "felles-sqlite-w1", "felles-sqlite-w2"):
            row = find(setup)
            if row and row["cpu_ms_per_op"]:
                app = row["cpu_ms_per_op"]["median"]
                db = (row["db_cpu_ms_per_op"] or {}).get("median", 0.0)
                per_setup[setup] = {
                    "server_cpu_ms": app,
                    "with_database_ms": round(app + db, 3),
                    "peer_cpu_ms": peer_cpu,
                    "met": app < peer_cpu,
                    "met_with_database": app + db < peer_cpu,
                }
        verdict["less_cpu_than_peer"] = per_setup
    durable = find("peer-pg")
    felles = find("felles-pg-w1")
    if durable and felles and durable["cpu_ms_per_op"] and felles["cpu_ms_per_op"]:
        # Context, not the target: the same peer with its state in PostgreSQL.
        app = felles["cpu_ms_per_op"]["median"]
        db = (felles["db_cpu_ms_per_op"] or {}).get("median", 0.0)
        peer_app = durable["cpu_ms_per_op"]["median"]
        peer_db = (durable["db_cpu_ms_per_op"] or {}).get("median", 0.0)
        verdict["compared_with_peer_on_postgresql"] = {
            "felles_server_cpu_ms": app,
            "felles_database_cpu_ms": db,
            "peer_server_cpu_ms": peer_app,
            "peer_database_cpu_ms": peer_db,
            "less_server_cpu": app < peer_app,
            "less_cpu_with_database": app + db < peer_app + peer_db,
        }
    pg = [r for r in (find("felles-pg-w1"), find("felles-pg-w2")) if r and r["ops_per_s"]]
    if pg:
        best = max(pg, key=lambda r: r["ops_per_s"]["median"])
        ops = best["ops_per_s"]["median"]
        p99 = best["p99_ms"]["median"] if best["p99_ms"] else None
        verdict["200_flows_per_s_p99_under_250ms_on_postgresql"] = {
            "setup": best["setup"],
            "ops_per_s": ops,
            "p99_ms": p99,
            "met": ops >= 200 and p99 is not None and p99 < 250,
        }
    return verdict


def chart(rows: list[dict[str, Any]]) -> str:
    """A hand-made SVG: server CPU ms/op (left) and ops/s on the box (right), with ranges."""
    colours = {
        "peer": "#8c5a00",
        "peer-pg": "#d4913a",
        "felles-pg-w1": "#0062ba",
        "felles-pg-w2": "#3f8fd9",
        "felles-sqlite-w1": "#1a7f37",
        "felles-sqlite-w2": "#5cb85c",
    }
    rows = ordered(rows)
    groups = list(dict.fromkeys(GROUPS[r["scenario"]] for r in rows))
    bar_h, gap, group_gap, top, label_w, panel_w = 16, 4, 22, 64, 370, 300
    height = top + len(rows) * (bar_h + gap) + len(groups) * group_gap + 30
    width = label_w + 2 * panel_w + 80
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">'
        "Felles vs oidc-provider on one 2-core machine (median of the runs; line = range)"
        "</text>",
    ]
    panels = [
        ("server CPU ms per operation (lower is better)", "cpu_ms_per_op", label_w, 2),
        ("operations/s on the box (higher is better)", "ops_per_s", label_w + panel_w + 40, 0),
    ]
    # Row positions, shared by the labels and both panels.
    ys: list[float] = []
    heads: list[tuple[str, float]] = []
    y = float(top)
    last = None
    for row in rows:
        group = GROUPS[row["scenario"]]
        if group != last:
            y += group_gap
            heads.append((group, y - 6))
            last = group
        ys.append(y)
        y += bar_h + gap
    for title, key, x0, digits in panels:
        values = [r[key]["max"] for r in rows if r[key]]
        scale = (panel_w - 70) / max(values) if values else 1.0
        parts.append(f'<text x="{x0}" y="{top - 8}" font-weight="bold">{escape(title)}</text>')
        parts.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{height - 20}" stroke="#999"/>')
        for row, y in zip(rows, ys, strict=True):
            stat = row[key]
            if not stat:
                continue
            w = stat["median"] * scale
            parts.append(
                f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{colours.get(row["setup"], "#777")}"/>'
            )
            lo, hi = x0 + stat["min"] * scale, x0 + stat["max"] * scale
            mid = y + bar_h / 2
            parts.append(
                f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="black"/>'
            )
            parts.append(
                f'<text x="{x0 + max(w, hi - x0) + 4:.1f}" y="{y + 12}">'
                f"{stat['median']:,.{digits}f}</text>"
            )
    for group, y in heads:
        parts.append(f'<text x="10" y="{y}" font-weight="bold">{escape(group)}</text>')
    for row, y in zip(rows, ys, strict=True):
        text = short_label(row["setup"])
        if row["scenario"] in GRANT:
            text += f": {GRANT[row['scenario']]}"
        parts.append(f'<text x="18" y="{y + 12}" font-size="11">{escape(text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, "scenario", 2.0, 16, "Virtual clients", 2000, DEFAULT_PG_URL)
    parser.add_argument("--full", action="store_true", help="Every scenario on every setup.")
    parser.add_argument(
        "--only",
        choices=["felles", "peer"],
        help="Measure one side only (peer: both peer rows; the targets need both sides).",
    )
    parser.add_argument("--setups", help="Comma-separated setups from the plan to keep.")
    parser.add_argument("--scenarios", help="Comma-separated scenarios to keep.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args()
    check_load_options(parser, args)

    plan = FULL_PLAN if args.full else DEFAULT_PLAN
    if args.only:
        plan = [(s, sc) for s, sc in plan if is_peer(s) == (args.only == "peer")]
    if args.setups:
        keep = set(args.setups.split(","))
        plan = [(s, sc) for s, sc in plan if s in keep]
    if args.scenarios:
        wanted = args.scenarios.split(",")
        plan = [(s, [x for x in sc if x in wanted]) for s, sc in plan]
        plan = [(s, sc) for s, sc in plan if sc]
    if not plan:
        parser.error("Nothing to measure with these options")

    console = Console()
    if not console.is_terminal and console.width < 200:
        console = Console(width=200)  # a log file gets the whole table
    began = time.perf_counter()
    load_average = os.getloadavg()[0]
    bench = Bench(args, console)
    load = LoadGenerators(args.processes, args.pg_url)
    try:
        rows = measure(bench, load, plan)
    finally:
        load.close()
        bench.close()

    console.print(table(rows, args))
    if args.markdown:
        console.print(markdown(rows), markup=False, highlight=False)
    verdict = targets(rows)
    for name, value in verdict.items():
        console.print(f"target {name}: {json.dumps(value)}", highlight=False)
    report = {
        **report_head(
            "identity",
            began,
            load_average,
            node=node_version(),
            oidc_provider=peer_version(),
            node_pg=peer_version("pg"),
        ),
        "method": {
            **load_method(args),
            "cpu": "utime+stime of the server process tree from /proc/<pid>/stat; "
            "db_cpu_ms_per_op: PostgreSQL backends connected to the server's database "
            "(Felles', or the peer-pg row's)",
            "peer_state": "peer: oidc-provider's in-memory adapter (the official comparison); "
            "peer-pg: the same peer with pg-adapter.mjs, one table in PostgreSQL, pg.Pool of 20",
            "peer_machine_token": "oidc-provider has no JWT bearer grant: its machine token "
            "is client_credentials with private_key_jwt, JWT access token signed ES256",
            "peer_login": "custom interaction policy: a first prompt whose check logs the "
            "login_hint's person in and saves a grant (see server.mjs)",
        },
        "targets": verdict,
        "results": rows,
        "markdown": markdown(rows),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    args.chart.write_text(chart(rows))
    console.print(
        f"Wrote {args.output} and {args.chart} in {time.perf_counter() - began:.0f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
