"""The grid, cell ids and the sweep directory: one atomically written result file per cell.

Layout of a sweep directory::

    spec.json            the spec and its result hash (a different spec is refused)
    cells/<cell id>.json one per finished cell: status "ok" with its row, or "failed" with the
                         error; written by temp file + rename, so a file that exists is whole
    results.csv          rebuilt from cells/ after every cell: each cell of the grid at most once
    summary.{json,md,html}, figures/*.png

A re-run skips every cell whose file exists, parses and carries the same cell hash; a failed
cell is skipped too unless ``retry_failed``. A killed sweep loses at most the cells in flight.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from hackforge_edge.bundle import atomic_write_json, read_json, utc_now
from hackforge_edge.errors import BundleError, HFEdgeError, UsageError

log = logging.getLogger(__name__)
SPEC_FILE = "spec.json"
CELLS_DIR = "cells"
LOCK_FILE = ".sweep.lock"


@dataclass(frozen=True)
class Cell:
    """One training run of the grid. ``weights``: the start ("none" under scratch)."""

    model: str
    strategy: str
    fraction: float
    seed: int
    weights: str = "none"

    @property
    def id(self) -> str:
        """File-name-safe and readable: ``resnet18__lora__source__f0.25__s1``."""
        start = Path(self.weights).stem if ("/" in self.weights or "." in self.weights) else self.weights
        return f"{self.model}__{self.strategy}__{start}__f{self.fraction:g}__s{self.seed}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def arm(record_or_cell: Any, spec) -> str:
    """The compared arm: the strategy, with its start when the spec has several starts."""
    get = (lambda k: record_or_cell[k]) if isinstance(record_or_cell, dict) else \
        (lambda k: getattr(record_or_cell, k))
    if get("strategy") == "scratch" or len(spec.weights) == 1:
        return get("strategy")
    return f"{get('strategy')}@{get('weights')}"


def expand(spec) -> list[Cell]:
    """Every cell, model-major: a sweep stopped early has whole models rather than one seed of
    everything. Within a model the smallest fraction comes first (the cheapest cells, and the
    low-data regime the question is about), then each seed with its strategies side by side,
    so the paired comparison with scratch fills in as it goes.
    Scratch starts from random weights whatever the starts are, so it runs once per seed."""
    cells = []
    for m in spec.models:
        for f in sorted(spec.fractions):
            for seed in spec.seeds:
                for s in spec.strategies:
                    for w in (["none"] if s == "scratch" else spec.weights):
                        cells.append(Cell(m, s, float(f), int(seed), w))
    return cells


GRID_FIELDS = ("models", "strategies", "fractions", "seeds", "weights")


def cell_hash(spec, cell: Cell) -> str:
    """Hash of everything that determines this cell's result: the shared training options and
    the cell itself (not the rest of the grid, so adding a seed keeps the finished cells)."""
    shared = {k: v for k, v in spec.result_fields().items() if k not in GRID_FIELDS}
    blob = json.dumps({"spec": shared, "cell": cell.to_json()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SweepDir:
    """The on-disk state of a sweep (see module doc)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.cells_dir = self.root / CELLS_DIR
        self._lock_fh = None

    # ---- spec and lock ------------------------------------------------------------------
    def check_spec(self, spec, *, force: bool = False) -> None:
        """Refuse a directory holding a different spec (unless ``force``); writes nothing."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"--out {self.root} exists and is not a directory")
        path = self.root / SPEC_FILE
        if not path.is_file():
            if self.root.is_dir() and any(p.name != LOCK_FILE for p in self.root.iterdir()) and not force:
                raise UsageError(f"--out {self.root} is not empty and holds no sweep spec.json "
                                 "(pass --force to use it anyway)")
            return
        try:
            old = read_json(path).get("result_hash")
        except (BundleError, AttributeError):
            old = None
        if old != spec.result_hash() and not force:
            raise UsageError(f"--out {self.root} holds a different sweep (spec hash {old}, this one "
                             f"{spec.result_hash()}); use another --out, or --force to replace its "
                             "spec (cells whose settings are unchanged are kept)")

    def write_spec(self, spec) -> None:
        atomic_write_json(self.root / SPEC_FILE, {
            "result_hash": spec.result_hash(), "written_at": utc_now(), "spec": spec.model_dump()})

    def lock(self) -> None:
        """Hold an exclusive lock on the directory while this process runs the sweep."""
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / LOCK_FILE, "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UsageError(f"another sweep is running in {self.root}") from None
        self._lock_fh = fh  # released by the OS when the process dies, even on SIGKILL

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # ---- cells --------------------------------------------------------------------------
    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.id}.json"

    def read_cell(self, spec, cell: Cell) -> dict[str, Any] | None:
        """The cell's record if it is complete and belongs to this spec, else None."""
        path = self.cell_path(cell)
        if not path.is_file():
            return None
        try:
            doc = read_json(path)
        except HFEdgeError as exc:  # cannot happen through atomic writes; a hand-edited file can
            log.warning("ignoring unreadable cell file %s: %s", path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("cell_hash") != cell_hash(spec, cell) \
                or doc.get("status") not in ("ok", "failed"):
            return None
        return doc

    def write_cell(self, record: dict[str, Any]) -> Path:
        return atomic_write_json(self.cells_dir / f"{record['cell_id']}.json", record)

    def plan(self, spec, *, retry_failed: bool = False) -> tuple[list[Cell], dict[str, dict]]:
        """(cells still to run, records of the cells already finished)."""
        todo, done = [], {}
        for cell in expand(spec):
            rec = self.read_cell(spec, cell)
            if rec is None or (retry_failed and rec["status"] == "failed"):
                todo.append(cell)
            else:
                done[cell.id] = rec
        return todo, done

    def records(self, spec) -> Iterator[dict[str, Any]]:
        """Finished records of this spec's grid, in grid order, each cell at most once."""
        for cell in expand(spec):
            rec = self.read_cell(spec, cell)
            if rec is not None:
                yield rec


def failed_record(spec, cell: Cell, exc: BaseException, *, wall_s: float, threads: int) -> dict[str, Any]:
    """The record of a cell that raised: the error in one line and the traceback's tail."""
    import traceback

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {**base_record(spec, cell, wall_s=wall_s, threads=threads), "status": "failed",
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
            "traceback_tail": tb[-2000:]}


def base_record(spec, cell: Cell, *, wall_s: float, threads: int) -> dict[str, Any]:
    import socket

    return {"cell_id": cell.id, **cell.to_json(), "cell_hash": cell_hash(spec, cell),
            "finished_at": utc_now(), "wall_s": round(wall_s, 3), "threads": threads,
            "host": socket.gethostname(), "pid": os.getpid()}
