"""`felles upstream ...`: the upstream login providers (like BankID) Felles brokers to.

Felles is registered as a client at the provider, with the redirect URI
`{FELLES_BASE_URL}/login/upstream/callback`; here the operator tells Felles about the
provider. The client secret is read from a file (or `-` for stdin), never from the
command line where other users could see it, and is stored encrypted under the master
key. Output for scripts is JSON on stdout and never holds the secret. Bad input is one
line on stderr with exit code 2; an unknown provider, code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from felles.cliutil import fail, run, settings, with_database
from felles.db import Database
from felles.identity import crypto, levels
from felles.identity import upstream as broker
from felles.identity.keys import SUPPORTED_ALGS, KeyStore, WrongMasterKey

T = TypeVar("T")

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Upstream login providers (like BankID): Felles logs people in through them.",
    no_args_is_help=True,
)
out = Console()


class Level(StrEnum):
    """The levels of assurance, as choices, so --help lists them and a typo is refused."""

    substantial = levels.SUBSTANTIAL
    high = levels.HIGH


OPTION_OF = {
    "name": "NAME",
    "display_name": "--display-name",
    "issuer": "--issuer",
    "client_id": "--client-id",
    "client_secret": "--client-secret-file",
    "acr": "--acr",
    "scope": "--scope",
    "pid_claim": "--pid-claim",
}

ProviderName = Annotated[
    str, typer.Argument(help="The provider's short name, e.g. bankid.", show_default=False)
]
DisplayName = Annotated[
    str | None,
    typer.Option("--display-name", help="What people see on the button (default: the name)."),
]
Issuer = Annotated[
    str | None,
    typer.Option("--issuer", help="The provider's issuer URL, exactly as its discovery says."),
]
ClientId = Annotated[
    str | None, typer.Option("--client-id", help="Felles' client id at the provider.")
]
SecretFile = Annotated[
    Path | None,
    typer.Option(
        "--client-secret-file",
        help="A file holding Felles' client secret at the provider ('-' reads stdin). "
        "Without it, Felles is a public client there (PKCE only).",
    ),
]
Acr = Annotated[
    Level | None,
    typer.Option("--acr", help="The level of assurance a login at this provider gives."),
]
Scopes = Annotated[
    list[str] | None,
    typer.Option("--scope", help="Scopes to ask the provider for. Repeat. Default: openid."),
]
PidClaim = Annotated[
    str | None,
    typer.Option(
        "--pid-claim",
        help="The ID token claim with the national identity number (default: pid).",
    ),
]


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def provider_json(provider: broker.ProviderRecord) -> dict[str, Any]:
    return provider.model_dump(mode="json")


def read_secret(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        fail(f"Cannot read the client secret file {path}: {reason}.", code=2)
    return text.strip()


def call(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on the configured database; the registry's errors become one line."""
    conf = settings()
    try:
        return cast(T, run(with_database(conf, work)))
    except broker.ProviderError as exc:
        option = OPTION_OF.get(exc.field)
        fail(f"{exc}" + (f" ({option})" if option else ""), code=2)
    except broker.UnknownProvider as exc:
        fail(str(exc))
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig or exc)
        if "no such table" in text or "does not exist" in text:
            fail("The database has no identity tables yet: run `felles db upgrade` first.")
        raise


async def checked_master_key(db: Database) -> bytes:
    """The master key, after proving it is the servers' (it decrypts their signing keys):
    a secret encrypted under another key would make every login there fail."""
    master = crypto.master_key(settings())
    store = KeyStore(db, master)
    for alg in SUPPORTED_ALGS:
        try:
            await store.signing_key(alg)
        except LookupError:
            continue  # no key yet: nothing to compare with
        except WrongMasterKey:
            fail(
                "This master key cannot decrypt the servers' signing keys, so the servers "
                "could not read a client secret stored with it. Set FELLES_MASTER_KEY to the "
                "servers' master key. Nothing was changed."
            )
    return master


@app.command("add")
def add(
    name: ProviderName,
    issuer: Annotated[
        str, typer.Option("--issuer", help="The provider's issuer URL, as its discovery says.")
    ],
    client_id: Annotated[str, typer.Option("--client-id", help="Felles' client id there.")],
    acr: Annotated[
        Level, typer.Option("--acr", help="The level of assurance a login there gives.")
    ],
    client_secret_file: SecretFile = None,
    display_name: DisplayName = None,
    scope: Scopes = None,
    pid_claim: PidClaim = None,
) -> None:
    """Add a provider (enabled at once); prints it as JSON, without the secret."""
    new = broker.NewProvider(
        name=name,
        issuer=issuer,
        client_id=client_id,
        acr=acr.value,
        client_secret=read_secret(client_secret_file),
        display_name=display_name,
        scope=" ".join(scope) if scope else "openid",
        pid_claim=pid_claim or "pid",
    )

    async def work(db: Database) -> broker.ProviderRecord:
        master = await checked_master_key(db) if new.client_secret else b""
        async with db.session() as session:
            return await broker.add_provider(session, master, new)

    print_json(provider_json(call(work)))


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List every provider, the disabled ones too."""

    async def work(db: Database) -> list[broker.ProviderRecord]:
        async with db.session() as session:
            return await broker.list_providers(session)

    rows = call(work)
    if as_json:
        print_json([provider_json(p) for p in rows])
        return
    if not rows:
        out.print("No upstream providers yet. Add one with `felles upstream add`.")
        return
    table = Table("Name", "Shown as", "Issuer", "Level", "Status")
    for column in table.columns[:3]:
        column.overflow = "fold"
    for p in rows:
        table.add_row(
            p.name,
            p.display_name,
            p.issuer,
            "high" if p.acr == levels.HIGH else "substantial",
            "enabled" if p.enabled else "disabled",
        )
    out.print(table)


@app.command("update")
def update(
    name: ProviderName,
    issuer: Issuer = None,
    client_id: ClientId = None,
    acr: Acr = None,
    client_secret_file: SecretFile = None,
    no_client_secret: Annotated[
        bool,
        typer.Option("--no-client-secret", help="Remove the secret (a public client there)."),
    ] = False,
    display_name: DisplayName = None,
    scope: Scopes = None,
    pid_claim: PidClaim = None,
) -> None:
    """Change a provider; only the options given change. Prints it as JSON."""
    if no_client_secret and client_secret_file is not None:
        fail("Give --client-secret-file or --no-client-secret, not both.", code=2)
    secret = "" if no_client_secret else read_secret(client_secret_file)
    if client_secret_file is not None and not secret:
        fail(f"The client secret file {client_secret_file} is empty.", code=2)
    change = broker.ProviderUpdate(
        display_name=display_name,
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        acr=acr.value if acr else None,
        scope=" ".join(scope) if scope else None,
        pid_claim=pid_claim,
    )
    if not change.model_dump(exclude_none=True):
        fail("Nothing to change: give at least one option (see --help).", code=2)

    async def work(db: Database) -> broker.ProviderRecord:
        master = await checked_master_key(db) if secret else b""
        async with db.session() as session:
            return await broker.update_provider(session, master, name, change)

    print_json(provider_json(call(work)))


@app.command("disable")
def disable(name: ProviderName) -> None:
    """Stop offering a provider at once; logins under way there are refused."""

    async def work(db: Database) -> broker.ProviderRecord:
        async with db.session() as session:
            return await broker.disable_provider(session, name)

    provider = call(work)
    out.print(f"Provider {provider.name} ({provider.display_name}) is disabled.", highlight=False)


@app.command("enable")
def enable(name: ProviderName) -> None:
    """Offer a disabled provider again."""

    async def work(db: Database) -> broker.ProviderRecord:
        async with db.session() as session:
            return await broker.enable_provider(session, name)

    provider = call(work)
    out.print(f"Provider {provider.name} ({provider.display_name}) is enabled.", highlight=False)


if __name__ == "__main__":  # `python -m felles.identity.upstream_cli` until `felles upstream`
    app()
