"""`felles registry ...`: look around the registers from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from felles.cliutil import fail, run, settings, with_database
from felles.db import Database
from felles.registry import service
from felles.registry.numbers import InvalidNumber, parse_pid

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The population, business and contact registers.",
    no_args_is_help=True,
)
out = Console()
CLI_ACCESS = service.Access(accessed_by="felles-cli", purpose="operator lookup")


def print_json(value: Any) -> None:
    def encode(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        if isinstance(item, list):
            return [encode(i) for i in item]
        if isinstance(item, dict):
            return {k: encode(v) for k, v in item.items()}
        return item

    typer.echo(json.dumps(encode(value), ensure_ascii=False, indent=2))


@app.command("people")
def people(
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=100_000)] = 20,
    offset: Annotated[int, typer.Option(help="How many to skip.", min=0)] = 0,
    reserved: Annotated[
        bool, typer.Option("--reserved", help="Only people who said no to digital mail.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List people in the population register."""

    async def work(db: Database) -> list[Any]:
        async with db.session() as session:
            return await service.list_people(
                session, limit=limit, offset=offset, reserved=True if reserved else None
            )

    rows = run(with_database(settings(), work))
    if as_json:
        print_json(rows)
        return
    table = Table("National identity number", "Name", "Born", "Municipality")
    for p in rows:
        table.add_row(p.pid, p.full_name, p.birth_date.isoformat(), p.municipality_name or "")
    out.print(table)


@app.command("person")
def person(
    pid: Annotated[str, typer.Argument(help="National identity number (11 digits).")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Everything the registers hold about one person."""
    try:
        number = parse_pid(pid).value
    except InvalidNumber as exc:
        fail(f"{exc}.", code=2)

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            try:
                record = await service.get_person(session, number, CLI_ACCESS)
            except service.NotFound:
                return {}
            return {
                "person": record,
                "relatives": await service.relatives(session, number, CLI_ACCESS),
                "roles": await service.roles_of(session, number, CLI_ACCESS),
                "contact": await service.contact(session, number, CLI_ACCESS),
                "history": await service.history(session, number, CLI_ACCESS),
            }

    found = run(with_database(settings(), work))
    if not found:
        fail("No person with that national identity number is in the population register.")
    if as_json:
        print_json(found)
        return
    p = found["person"]
    out.print(f"[bold]{p.full_name}[/]  {p.pid}")
    out.print(f"Born {p.birth_date.isoformat()}, citizenship {p.citizenship}")
    out.print(f"{p.street}, {p.postal_code} {p.postal_town} ({p.municipality_name})")
    for rel in found["relatives"]:
        out.print(f"  {rel.kind}: {rel.person.full_name} ({rel.person.pid})")
    for role in found["roles"]:
        out.print(f"  role {role.code} in {role.organisation.name} ({role.organisation.orgnr})")
    contact = found["contact"]
    if contact is None:
        out.print("No entry in the contact register.")
    else:
        state = "reserved against digital mail" if contact.reserved else "digital mail allowed"
        out.print(f"Contact: {contact.email or '-'}, {contact.mobile or '-'}; {state}")
    for event in found["history"]:
        out.print(f"  {event.effective_on.isoformat()} {event.kind}")


@app.command("orgs")
def orgs(
    limit: Annotated[int, typer.Option(help="How many to show.", min=1, max=100_000)] = 50,
    form: Annotated[str | None, typer.Option(help="Only this form, e.g. AS or KOMM.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List organisations in the business register."""

    async def work(db: Database) -> list[Any]:
        async with db.session() as session:
            return await service.list_organisations(session, limit=limit, form=form)

    rows = run(with_database(settings(), work))
    if as_json:
        print_json(rows)
        return
    table = Table("Organisation number", "Name", "Form", "Industry")
    for o in rows:
        table.add_row(o.orgnr, o.name, o.form, o.industry_code or "")
    out.print(table)
