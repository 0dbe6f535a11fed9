"""Per-task accuracy of a merged bundle's inputs, base and merge, side by side (for
``hf-edge compare``). Reads ``merge_eval.json``; bundles without it contribute nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def merge_tables(paths: Iterable[str | os.PathLike]) -> list:
    """One Rich Table per merged bundle among ``paths``."""
    from rich.table import Table

    from hackforge_edge.merging.artifacts import MergeEval

    tables = []
    for p in paths:
        f = Path(p) / MergeEval.FILENAME
        if not f.is_file():
            continue
        ev = MergeEval.read(f)
        t = Table(title=f"{Path(p).name}: accuracy on each task's test split (merge_eval.json)")
        t.add_column("model", justify="left")
        for name in [*ev.tasks, "mean"]:
            t.add_column(name, justify="right")
        for label, row in ev.rows.items():
            cells = ["-" if row.get(n) is None else f"{row[n]['accuracy']:.4f}" for n in ev.tasks]
            mean = row.get("_mean_accuracy")
            t.add_row(label, *cells, "-" if mean is None else f"{mean:.4f}")
        t.caption = ev.method
        tables.append(t)
    return tables
