"""PLACEHOLDER: replaced by the module that implements `hf-edge report`."""

import typer


def report() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
