"""``hf-edge schema [NAME] [--out DIR]``: the JSON Schemas of the bundle files, so other tools
can read bundles (and check them) without importing hackforge_edge."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def schema(
    name: Optional[str] = typer.Argument(None, help="A bundle file (e.g. metrics.json); "
                                                    "print its JSON Schema."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write every schema as DIR/<file>.schema.json."),
) -> None:
    """List the bundle files and their schema versions, or print / write their JSON Schemas."""
    from hackforge_edge.bundle.files import atomic_write_json, dumps_json
    from hackforge_edge.bundle.registry import artifact_class, available, json_schema

    if name is not None and out is None:
        typer.echo(dumps_json(json_schema(artifact_class(name))), nl=False)
        return
    found, missing = available()
    if name is not None:
        found = {name: artifact_class(name)}
    for filename, cls in found.items():
        line = f"{filename:<24} schema_version {cls.supported_version()}  {cls.__module__}.{cls.__name__}"
        if out is not None:
            path = atomic_write_json(out / f"{filename}.schema.json", json_schema(cls))
            line += f"  -> {path}"
        typer.echo(line)
    for filename, why in missing.items():
        typer.echo(f"{filename:<24} (no schema: {why})")
