"""`felles identity ...`: operate the login service's signing keys and expired rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from felles.cliutil import fail, run, settings, with_database
from felles.db import Database
from felles.identity import crypto
from felles.identity.keys import SUPPORTED_ALGS, KeyInfo, KeyStore, WrongMasterKey, list_keys

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The login service: signing keys, expired rows.",
    no_args_is_help=True,
)
out = Console()

# The longest a token we sign lives (8 hours) plus two minutes of leeway.
DEFAULT_TOKEN_LIFETIME_SECONDS = 8 * 3600 + 120


class Alg(StrEnum):
    """SUPPORTED_ALGS as choices, so --help lists them and a typo is refused."""

    RS256 = "RS256"
    ES256 = "ES256"


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


@app.command("rotate-keys")
def rotate_keys(
    alg: Annotated[
        Alg | None, typer.Option("--alg", help="Rotate only this algorithm (default: all).")
    ] = None,
    token_lifetime_seconds: Annotated[
        int,
        typer.Option(
            help="The longest a token we sign lives: old keys stay published that long "
            "(plus the servers' 30 s key cache).",
            min=0,
        ),
    ] = DEFAULT_TOKEN_LIFETIME_SECONDS,
) -> None:
    """Make new signing keys; the old ones stay in the JWKS until their tokens expire."""
    conf = settings()
    master = crypto.master_key(conf)

    async def work(db: Database) -> tuple[KeyStore, list[str], list[KeyInfo]]:
        store = KeyStore(db, master)
        # With another master key than the servers', the new keys would be unusable
        # to them and every login would fail: prove it decrypts the current keys first.
        for name in [alg.value] if alg else SUPPORTED_ALGS:
            try:
                await store.signing_key(name)
            except LookupError:
                pass  # no key yet: nothing to compare with
            except WrongMasterKey:
                fail(
                    "This master key cannot decrypt the current signing keys, so the "
                    "servers could not use keys made with it. Set FELLES_MASTER_KEY to "
                    "the servers' master key. Nothing was changed."
                )
        kids = await store.rotate(
            alg=alg.value if alg else None,
            token_lifetime=timedelta(seconds=token_lifetime_seconds),
        )
        return store, kids, await list_keys(db)

    store, kids, keys = run(with_database(conf, work))
    by_kid = {key.kid: key for key in keys}
    for kid in kids:
        new = by_kid[kid]
        out.print(f"New {new.alg} key: {kid}", highlight=False, soft_wrap=True)
        retired = [k for k in keys if k.alg == new.alg and k.retired_at == new.created_at]
        for old in retired:
            out.print(
                f"  replaces {old.kid}, published until {_when(old.publish_until)}",
                highlight=False,
                soft_wrap=True,
            )
        if not retired:
            out.print(f"  (there was no active {new.alg} key)", highlight=False, soft_wrap=True)
    out.print(
        f"Running servers switch to the new keys within {store.cache_seconds:g} seconds.",
        highlight=False,
        soft_wrap=True,
    )


@app.command("keys")
def keys(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List the signing keys: active ones sign, retired ones are still published."""
    conf = settings()
    rows: list[KeyInfo] = run(with_database(conf, list_keys))
    if as_json:
        data: list[dict[str, Any]] = [
            {
                "kid": k.kid,
                "alg": k.alg,
                "created_at": _when(k.created_at),
                "retired_at": _when(k.retired_at) or None,
                "publish_until": _when(k.publish_until) or None,
                "status": k.status,
            }
            for k in rows
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    if not rows:
        out.print("No signing keys yet. The server makes them when it starts.")
        return
    table = Table(title="Signing keys (times in UTC)")
    # The kid folds rather than being cut (people compare it with token headers); the
    # retirement time is in --json, the status says enough to fit 80 columns.
    table.add_column("Key id (kid)", overflow="fold", min_width=20)
    for column in ("Alg", "Status", "Created", "Published until"):
        table.add_column(column, no_wrap=True)
    for k in rows:
        table.add_row(
            k.kid,
            k.alg,
            k.status,
            _short(k.created_at),
            _short(k.publish_until),
        )
    out.print(table)


@app.command("purge")
def purge_expired(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Delete expired codes, requests, sessions, tokens and counters now (the server
    also does it every FELLES_PURGE_MINUTES)."""
    from felles.identity.housekeeping import purge

    conf = settings()
    removed: dict[str, int] = run(with_database(conf, purge))
    if as_json:
        typer.echo(json.dumps(removed, indent=2))
        return
    table = Table(title="Expired rows deleted")
    table.add_column("What")
    table.add_column("Rows", justify="right")
    for what, count in removed.items():
        table.add_row(what, f"{count:,}")
    out.print(table)
