"""PLACEHOLDER: replaced by the module that implements `hf-edge train-and-export`."""

import typer


def train_and_export() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
