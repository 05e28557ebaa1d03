"""`python -m felles` is the `felles` command."""

from felles.cli import main

main()
