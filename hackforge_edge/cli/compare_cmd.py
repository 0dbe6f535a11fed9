"""``hf-edge compare BUNDLE... [--out DIR]``: strategies side by side (accuracy, trainable
parameters, training energy and CO2, change against the from-scratch bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def compare(
    bundles: List[Path] = typer.Argument(..., help="Run bundle directories to compare."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write compare.json and compare.md here."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Compare bundles that are incomplete or no longer match their "
                                          "manifest, with a warning (default: refuse them)."),
) -> None:
    """Compare transfer strategies across bundles: accuracy vs training energy and CO2."""
    from hackforge_edge.bundle import atomic_write_json, atomic_write_text
    from hackforge_edge.cli._console import make_console
    from hackforge_edge.energy.compare import compare_bundles, comparison_markdown, render_comparison_table

    rows = compare_bundles(bundles, allow_incomplete=allow_incomplete)
    console = make_console()
    console.print(render_comparison_table(rows))
    from hackforge_edge.merging.compare import merge_tables

    for table in merge_tables(bundles):  # merged bundles: every input, base and merge per task
        console.print(table)
    if out is not None:
        atomic_write_json(out / "compare.json", {"rows": rows})
        atomic_write_text(out / "compare.md", comparison_markdown(rows))
        typer.echo(f"wrote {out / 'compare.json'} and {out / 'compare.md'}")
