"""The `felles` command. Each part adds its own sub-commands (its cli.py)."""

from __future__ import annotations

import errno
import faulthandler
import signal
import socket
import sys
from importlib import import_module
from typing import Annotated, Any

import typer
from sqlalchemy import text
from typer.core import TyperGroup

from felles.cliutil import err, fail, run, settings, with_database
from felles.config import Settings
from felles.db import Database

# Each part's commands, imported only when asked for: `felles mailbox send` need not
# load the identity provider (a second of start-up for every command otherwise).
PARTS = {
    "registry": ("felles.registry.cli", "app"),
    "demo": ("felles.demo.cli", "app"),
    "identity": ("felles.identity.cli", "app"),
    "clients": ("felles.identity.clients_cli", "clients_app"),
    "scopes": ("felles.identity.clients_cli", "scopes_app"),
    "upstream": ("felles.identity.upstream_cli", "app"),
    "portal": ("felles.portal.cli", "app"),
    "mailbox": ("felles.mailbox.cli", "app"),
}


class _LazyParts(TyperGroup):
    """The top-level group: the parts' sub-commands are loaded on first use."""

    # Typer brings its own copy of Click: its Context and Command types, hence Any.
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *PARTS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in PARTS:
            return super().get_command(ctx, cmd_name)
        module, attribute = PARTS[cmd_name]
        command = typer.main.get_group(getattr(import_module(module), attribute))
        command.name = cmd_name
        return command


app = typer.Typer(
    rich_markup_mode="markdown",
    cls=_LazyParts,
    help="Felles: common digital building blocks for a public sector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(rich_markup_mode="markdown", help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    conf = settings()

    async def work(db: Database) -> None:
        await db.upgrade()

    run(with_database(conf, work))
    err.print("Database is up to date.")


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(
                    f"Port {port} on {host} is already in use. "
                    f"Stop what is using it, or choose another with --port."
                )
            fail(f"Cannot listen on {host}:{port} ({exc.strerror}). Check --host and --port.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Seed a small synthetic country if the database is empty."),
    ] = False,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the whole platform over HTTP."""
    conf = settings()
    if demo and not conf.demo_allowed():  # before the demo code is even imported
        fail("Demo data is never seeded when FELLES_ENV=prod. Unset --demo or FELLES_ENV.")
    check_port_free(host, port)

    import uvicorn

    from felles.demo.service import seed_if_empty
    from felles.identity.demo import seed_scopes
    from felles.portal.demo import publish_examples
    from felles.web.http import CoalescingHttpProtocol

    async def prepare(db: Database) -> None:
        if conf.is_sqlite or conf.env.value != "prod":
            await db.upgrade()
        warning = await connection_budget_warning(db, workers)
        if warning:
            err.print(f"[yellow]Warning:[/] {warning}")
        if demo:
            await seed_if_empty(db, persons=conf.demo_persons, seed=conf.demo_seed)
            await seed_scopes(db)
            await publish_examples(db)

    run(with_database(conf, prepare))
    if workers > 1:
        share_metrics_between_workers(conf)
    err.print(f"Felles is running on http://{host}:{port}  (press Ctrl+C to stop)")
    uvicorn.run(
        "felles.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_config=None,
        access_log=False,
        proxy_headers=bool(conf.trusted_proxies.strip()),
        forwarded_allow_ips=conf.trusted_proxies.strip() or None,
        server_header=False,
        http=CoalescingHttpProtocol,
    )


@app.command()
def worker() -> None:
    """Deliver events (webhooks), render receipt PDFs, release mail batches and send
    mail notifications until Ctrl+C, apart from the web servers (then set
    FELLES_EVENTS_DISPATCH=false, FELLES_RECEIPTS_SECONDS=0 and FELLES_MAILBOX_SECONDS=0
    for `felles serve`)."""
    import asyncio

    from felles.events.runtime import EventsRuntime
    from felles.mailbox import worker as mail_worker
    from felles.mailbox.providers import ensure_providers
    from felles.portal import receipts

    conf = settings()

    async def work(db: Database) -> None:
        if conf.is_sqlite or conf.env.value != "prod":
            await db.upgrade()
        runtime = EventsRuntime(conf, db)
        dispatcher = runtime.dispatcher()
        err.print("Felles worker is delivering events  (press Ctrl+C to stop)")
        rendering = asyncio.create_task(
            receipts.run_now_and_then(db, conf.receipts_seconds or 2.0, conf)
        )
        async with db.session() as session:
            await ensure_providers(session, conf.keys_dir)
        mailing = asyncio.create_task(
            mail_worker.run_now_and_then(db, conf.mailbox_seconds or 2.0, conf)
        )
        try:
            await dispatcher.run()
        finally:
            rendering.cancel()
            mailing.cancel()
            await asyncio.gather(rendering, mailing, return_exceptions=True)
            receipts.shutdown_pool()
            await runtime.close()

    run(with_database(conf, work))


async def connection_budget_warning(db: Database, workers: int) -> str | None:
    """Why the workers' pools could ask PostgreSQL for more connections than it allows
    (each worker has two pools of up to FELLES_DB_CONNECTIONS), or None."""
    if db.is_sqlite:
        return None
    async with db.engine.connect() as conn:
        limits = await conn.execute(
            text(
                "SELECT current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int"
            )
        )
        allowed, reserved = limits.one()
    wanted = workers * 2 * db.connections
    available = allowed - reserved
    if wanted <= available:
        return None
    fits = max(available // (workers * 2), 1)
    return (
        f"{workers} worker(s) × 2 pools × FELLES_DB_CONNECTIONS={db.connections} may open "
        f"{wanted} PostgreSQL connections, but the server allows {available} "
        f"(max_connections {allowed} minus {reserved} reserved). Under load requests would "
        f"fail. Set FELLES_DB_CONNECTIONS={fits} or less, or raise max_connections."
    )


def share_metrics_between_workers(conf: Settings) -> None:
    """Prometheus multiprocess mode: workers write to files that /metrics sums up."""
    import os
    import shutil

    folder = conf.data_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def main() -> None:
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's stack to stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
