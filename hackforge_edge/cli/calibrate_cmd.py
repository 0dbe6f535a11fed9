"""PLACEHOLDER: replaced by the module that implements `hf-edge calibrate`."""

import typer


def calibrate() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
