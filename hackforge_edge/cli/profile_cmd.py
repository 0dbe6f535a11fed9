"""PLACEHOLDER: replaced by the module that implements `hf-edge profile`."""

import typer


def profile() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
