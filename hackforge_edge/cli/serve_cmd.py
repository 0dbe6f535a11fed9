"""PLACEHOLDER: replaced by the module that implements `hf-edge serve`."""

import typer


def serve() -> None:
    """Not implemented yet."""
    raise typer.Exit(3)
