"""`felles mailbox ...`: sending letters and bulk mailings from the command line, and
the demo's print provider."""

from __future__ import annotations

import typer

from felles.mailbox.print_cli import print_queue
from felles.mailbox.send_cli import demo_people, example_mailing, send_batch, send_letter

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Digital mail: bulk mailings and the print queue.",
    no_args_is_help=True,
)
app.command("send")(send_letter)
app.command("send-batch")(send_batch)
app.command("demo-people")(demo_people)
app.command("example-mailing")(example_mailing)
app.command("print-queue")(print_queue)
