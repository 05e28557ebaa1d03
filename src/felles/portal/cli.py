"""`felles portal ...`: publish services and look at the catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from felles.cliutil import err, fail, run, settings, with_database
from felles.db import Database
from felles.portal import catalogue
from felles.portal.definition import DefinitionError

app = typer.Typer(help="The service portal: services, forms and submissions.", no_args_is_help=True)
out = Console()


@app.command("publish")
def publish(
    files: Annotated[list[Path], typer.Argument(help="Service definitions (YAML or JSON).")],
) -> None:
    """Validate and publish service definitions; a broken one is refused with every problem."""
    import yaml

    documents = []
    for file in files:
        try:
            documents.append((file, yaml.safe_load(file.read_text(encoding="utf-8"))))
        except OSError as exc:
            fail(f"Cannot read {file}: {exc.strerror}")
        except yaml.YAMLError as exc:
            fail(f"{file} is not valid YAML or JSON: {exc}".splitlines()[0])

    async def work(db: Database) -> list[catalogue.Published]:
        done = []
        for file, document in documents:
            try:
                async with db.session() as session:
                    done.append(await catalogue.publish(session, document, published_by="cli"))
            except DefinitionError as exc:
                err.print(f"[bold red]{file}[/] cannot be published:")
                for problem in exc.problems:
                    err.print(f"  • {problem}", highlight=False)
                raise typer.Exit(1) from None
        return done

    for item in run(with_database(settings(), work)):
        state = "published" if item.created else "already published (unchanged)"
        err.print(f"{item.code} version {item.version}: {state}")


@app.command("services")
def services(
    query: Annotated[str, typer.Argument(help="Words to search for.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """The catalogue: services people can use, with their current version."""

    async def work(db: Database) -> list[catalogue.CatalogueEntry]:
        async with db.session() as session:
            return await catalogue.search(session, query)

    found = run(with_database(settings(), work))
    if as_json:
        rows = [
            {
                "code": e.code,
                "version": e.version,
                "owner": e.owner_orgnr,
                "name": e.definition.name.en,
            }
            for e in found
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("code", "version", "owner", "name")
    for e in found:
        table.add_row(e.code, str(e.version), e.owner_orgnr, e.definition.name.nb)
    out.print(table)
