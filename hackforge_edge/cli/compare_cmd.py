"""PLACEHOLDER: replaced by the module that implements `hf-edge compare`."""

import typer


def compare() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
