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

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The service portal: services, forms and submissions.",
    no_args_is_help=True,
)
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


@app.command("demo-people")
def demo_people(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """People of the demo country to log in as with TestID, for trying the portal: a
    parent with children (the kindergarten form), and a general manager and an accountant
    of a business (the VAT return, and giving others access)."""
    from sqlalchemy import select

    from felles.registry.models import ContactInfo, Organisation, Person, Relation, Role

    async def work(db: Database) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        async with db.session() as session:
            parent = (
                await session.execute(
                    select(Person.pid, Person.given_name, Person.family_name)
                    .join(Relation, Relation.pid == Person.pid)
                    .join(ContactInfo, ContactInfo.pid == Person.pid)
                    .where(Relation.kind == "child", ContactInfo.email.is_not(None))
                    .order_by(Person.pid)
                    .limit(1)
                )
            ).first()
            if parent:
                found.append(
                    {
                        "pid": parent[0],
                        "name": f"{parent[1]} {parent[2]}",
                        "try": "kindergarten-place",
                    }
                )
            for code, service in (
                ("DAGL", "vat-return, access for others"),
                ("REGN", "vat-return"),
            ):
                row = (
                    await session.execute(
                        select(
                            Person.pid,
                            Person.given_name,
                            Person.family_name,
                            Organisation.name,
                            Organisation.orgnr,
                        )
                        .join(Role, Role.pid == Person.pid)
                        .join(Organisation, Organisation.orgnr == Role.orgnr)
                        .where(Role.code == code)
                        .order_by(Organisation.orgnr)
                        .limit(1)
                    )
                ).first()
                if row:
                    found.append(
                        {
                            "pid": row[0],
                            "name": f"{row[1]} {row[2]}",
                            "role": f"{code} in {row[3]} ({row[4]})",
                            "try": service,
                        }
                    )
        return found

    people = run(with_database(settings(), work))
    if as_json:
        typer.echo(json.dumps(people, ensure_ascii=False, indent=2))
        return
    table = Table("national identity number", "name", "role", "try")
    for p in people:
        table.add_row(p["pid"], p["name"], p.get("role", ""), p["try"])
    out.print(table)
