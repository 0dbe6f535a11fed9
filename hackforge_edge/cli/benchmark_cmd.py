"""PLACEHOLDER: replaced by the module that implements `hf-edge benchmark`."""

import typer


def benchmark() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
