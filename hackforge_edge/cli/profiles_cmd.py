"""PLACEHOLDER: replaced by `hf-edge profiles list|show`."""

import typer

app = typer.Typer(help="Hardware profiles.", no_args_is_help=True)
