"""`felles mailbox ...`: bulk mailings from the command line."""

from __future__ import annotations

import typer

from felles.mailbox.batch_cli import send_batch

app = typer.Typer(help="Digital mail: bulk mailings and the print queue.", no_args_is_help=True)
app.command("send-batch")(send_batch)
