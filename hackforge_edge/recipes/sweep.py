"""``sweep`` as functions: check the spec and the executor, then run every unfinished cell
(one metered training run each, through train-and-export's ``train_one``), keep results.csv
current after each cell, and write the summary with intervals over seeds at the end.

Steps: check spec -> check the output directory (a different spec is refused) -> connect Ray
(if asked) -> only then write spec.json and take the directory's lock -> run the cells ->
summary -> optional exports (re-runs through train-and-export, see :func:`export_cells`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hackforge_edge.sweep.cells import Cell, SweepDir, base_record, expand, failed_record
from hackforge_edge.sweep.executors import RunOptions, connect_ray, run_local, run_ray
from hackforge_edge.sweep.spec import SweepSpec

log = logging.getLogger(__name__)
# CodeCarbon's energy columns (energy/accounting.EMISSIONS_COLUMNS) kept per cell: the
# target-domain training phase only, so every cell is metered over the same kind of work
ENERGY_COLUMNS = ("duration", "emissions", "emissions_rate", "cpu_power", "gpu_power", "ram_power",
                  "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "region", "pue")


@dataclass
class SweepOutcome:
    root: Path
    total: int
    skipped: int
    ran: int = 0
    failed: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    exports: dict[str, Any] | None = None


def prepare(spec: SweepSpec, opts: RunOptions) -> SweepDir:
    """Every check that can fail, then the directory: nothing is written unless all pass."""
    sd = SweepDir(spec.resolved_out())
    sd.check_spec(spec, force=opts.force)
    if opts.executor == "ray":
        connect_ray(opts.ray_address)
    sd.lock()
    sd.write_spec(spec)
    return sd


def run_sweep(spec: SweepSpec, opts: RunOptions, *, on_start: Callable[[int, int], None] | None = None,
              on_cell: Callable[[dict, int, int], None] | None = None) -> SweepOutcome:
    """Run the sweep; ``on_start(todo, total)`` once, ``on_cell(record, done, todo)`` per cell."""
    from hackforge_edge.sweep.summary import write_results_csv, write_summary

    sd = prepare(spec, opts)
    try:
        todo, done = sd.plan(spec, retry_failed=opts.retry_failed)
        total = len(expand(spec))
        outcome = SweepOutcome(sd.root, total=total, skipped=len(done))
        if on_start:
            on_start(len(todo), total)
        spec_doc, root = spec.model_dump(), str(sd.root.resolve())

        def done_one(record: dict) -> None:
            outcome.ran += 1
            outcome.failed += record.get("status") != "ok"
            write_results_csv(sd, spec)  # current after every cell, rebuilt from the cell files
            if on_cell:
                on_cell(record, outcome.ran, len(todo))

        cells = [c.to_json() for c in todo]
        if opts.executor == "ray":
            def crashed(cell: dict, exc: BaseException) -> dict:
                rec = failed_record(spec, Cell(**cell), exc, wall_s=0.0, threads=opts.threads_per_job())
                sd.write_cell(rec)
                return rec
            run_ray(run_cell, spec_doc, cells, root, opts, done_one, crashed)
        else:
            run_local(run_cell, spec_doc, cells, root, opts, done_one)
        write_results_csv(sd, spec)
        outcome.records = list(sd.records(spec))
        outcome.summary = write_summary(sd, spec)
        if spec.export != "none":
            outcome.exports = export_cells(spec, sd, outcome.records)
        return outcome
    finally:
        sd.unlock()


def summarise_only(spec: SweepSpec) -> dict[str, Any]:
    """Rebuild results.csv and the summary from the cells finished so far; runs nothing.
    (Safe while the sweep runs: every file is written atomically.)"""
    from hackforge_edge.errors import UsageError
    from hackforge_edge.sweep.summary import write_results_csv, write_summary

    sd = SweepDir(spec.resolved_out())
    if not (sd.root / "spec.json").is_file():
        raise UsageError(f"--out {sd.root} holds no sweep (no spec.json)")
    sd.check_spec(spec)
    write_results_csv(sd, spec)
    return write_summary(sd, spec)


# ---- one cell (runs in a worker process or a Ray task) -----------------------------------

def run_cell(spec_doc: dict, cell_doc: dict, root: str, threads: int) -> dict[str, Any]:
    """Train, evaluate and meter one cell; write its record atomically; return it.

    Any exception (a bad image, out of memory) becomes a "failed" record with the error, so the
    sweep goes on. KeyboardInterrupt is not caught: the cell stays unfinished.
    """
    import torch

    torch.set_num_threads(int(threads))
    spec, cell, sd = SweepSpec.model_validate(spec_doc), Cell(**cell_doc), SweepDir(root)
    t0 = time.perf_counter()
    try:
        record = _train_cell(spec, cell, threads=threads, t0=t0)
    except Exception as exc:  # noqa: BLE001 - recorded with its error; the sweep continues
        log.warning("cell %s failed: %s", cell.id, exc)
        record = failed_record(spec, cell, exc, wall_s=time.perf_counter() - t0, threads=threads)
    sd.write_cell(record)
    return record


def _train_cell(spec: SweepSpec, cell: Cell, *, threads: int, t0: float) -> dict[str, Any]:
    from hackforge_edge.data.loader import load_dataset
    from hackforge_edge.energy.accounting import emissions_row
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.recipes.train_and_export import train_one

    cfg = spec.train_config(cell)
    grid = resolve_grid(spec.region, spec.grid_intensity, spec.pue)
    splits = load_dataset(spec.data, image_size=spec.image_size, seed=cell.seed,
                          data_fraction=cell.fraction, group_pattern=spec.group_pattern,
                          synthetic_sizes=spec.synthetic_sizes)
    t = train_one(cfg, splits, run_name=f"sweep cell {cell.id}", say=lambda _msg: None)
    by_name = {m.name: m for m in t.phases}
    train_m = by_name["target_transfer"]
    energy = emissions_row([train_m], grid, run_id=cell.id)
    src = by_name.get("source_pretrain")
    m, p = t.metrics, t.params
    return {
        **base_record(spec, cell, wall_s=time.perf_counter() - t0, threads=threads),
        "status": "ok", "error": None,
        "train_images": len(splits.train), "val_images": len(splits.val), "test_images": len(splits.test),
        "accuracy": m.get("accuracy"), "f1": m.get("f1"), "roc_auc": m.get("roc_auc"),
        "sensitivity": m.get("sensitivity"), "specificity": m.get("specificity"),
        "test_loss": m.get("loss"), "best_val_accuracy": t.result.best_val_accuracy,
        "best_epoch": t.result.best_epoch,
        "trainable_params": p.trainable_params, "total_params": p.total_params,
        "deployed_params": p.deployed_params, "adapter_params": p.adapter_params,
        **{k: (energy.get(k) if energy.get(k) != "" else None) for k in ENERGY_COLUMNS},
        "energy_kind": train_m.kind, "energy_method": train_m.method,
        "energy_band_low": train_m.band[0] if train_m.band else None,
        "energy_band_high": train_m.band[1] if train_m.band else None,
        "source_cache_hit": None if src is None else src.kind == "cache-hit",
        # a source model pretrained inside this cell (a cache miss): its one-off energy, kWh
        "source_pretrain_energy_consumed": (src.energy_kwh if src is not None and src.kind != "cache-hit"
                                            else None),
    }


# ---- exports --------------------------------------------------------------------------------

def export_cells(spec: SweepSpec, sd: SweepDir, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Bundles for ``spec.export``: "all" every ok cell, "best" per model the cell with the best
    validation accuracy (ties: less training energy). Each is a re-run of the cell through
    train-and-export (same seed and settings; on CPU with the same thread count the training is
    deterministic), so the bundle is a complete, verified one. Returns {cell id: bundle info}.
    """
    from hackforge_edge.bundle import atomic_write_json, read_json
    from hackforge_edge.recipes import train_and_export as pipeline

    ok = [r for r in records if r.get("status") == "ok"]
    if spec.export == "best":
        chosen: dict[str, dict] = {}
        for r in ok:
            key = (r.get("best_val_accuracy") or 0.0, -(r.get("energy_consumed") or 0.0))
            cur = chosen.get(r["model"])
            if cur is None or key > (cur.get("best_val_accuracy") or 0.0, -(cur.get("energy_consumed") or 0.0)):
                chosen[r["model"]] = r
        ok = list(chosen.values())
    out: dict[str, Any] = {}
    for r in ok:
        cell = Cell(r["model"], r["strategy"], r["fraction"], r["seed"], r["weights"])
        path = sd.root / "bundles" / cell.id
        pipeline.run(spec.train_config(cell, out=str(path)), say=lambda _m: None)
        acc = read_json(path / "metrics.json").get("accuracy")
        out[cell.id] = {"bundle": str(path.relative_to(sd.root)), "accuracy": acc,
                        "sweep_accuracy": r.get("accuracy"),
                        "same_accuracy_as_sweep_cell": acc == r.get("accuracy")}
    atomic_write_json(sd.root / "exports.json", {"export": spec.export, "bundles": out})
    return out
