"""`felles demo ...`: make the synthetic country."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from felles.cliutil import err, fail, run, settings, with_database
from felles.db import Database

app = typer.Typer(rich_markup_mode="markdown", help="Synthetic demo data.", no_args_is_help=True)


@app.command("seed")
def seed_command(
    persons: Annotated[int, typer.Option(help="How many people to create.", min=1)] = 10_000,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same country.")
    ] = 2016,
) -> None:
    """Create a synthetic country: people, families, businesses with roles, agencies."""
    from felles.demo.service import DemoError, seed_country
    from felles.identity.demo import seed_scopes
    from felles.portal.demo import publish_examples

    conf = settings()
    if not conf.demo_allowed():
        fail("Demo data is never seeded when FELLES_ENV=prod.")

    async def work(db: Database) -> object:
        await db.upgrade()
        with Progress(
            TextColumn("[bold]Seeding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("people"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("seed", total=persons)
            summary = await seed_country(
                db,
                persons=persons,
                seed=seed,
                progress=lambda done: bar.update(task, completed=done),
            )
        await seed_scopes(db)
        await publish_examples(db)
        return summary

    try:
        summary = run(with_database(conf, work))
    except DemoError as exc:
        fail(str(exc))
    err.print(str(summary))
