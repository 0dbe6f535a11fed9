"""Transfer strategies side by side on the default synthetic task, over seeds.

For every strategy (scratch, frozen, finetune, lora, progressive, ewc, l2sp) and seed, runs the
real ``train-and-export`` pipeline (``--no-profile``; the default model, data and recipe unless
flags say otherwise) and reads its bundle:

* target accuracy (measured on the 200-image target test split),
* source accuracy after transfer on the 200-image source test split (the transferred model as
  deployed; the source model scores ``before``), and retention = after / before,
* trainable parameters (counted; progressive: the count of its last epoch, all groups),
* training energy: phases ``target_transfer`` + ``ewc_fisher`` from training_carbon.json
  (on a machine without power counters an ESTIMATE: process CPU time x TDP share),
* wall time of the same phases (seconds).

Each cell is a mean with a 95 % t-interval over seeds (t quantile with n - 1 degrees of
freedom). Differences against finetune are paired by seed (same data split, same source model)
and carry their own t-interval. Source models (one per seed) are pretrained on a cache miss and
not counted. Run under the shared lock, and note the load:

    flock /tmp/hf-bench.lock python benchmarks/strategies.py [--seeds 0 1 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

STRATEGIES = ("scratch", "frozen", "finetune", "lora", "progressive", "ewc", "l2sp")
TRAIN_PHASES = ("target_transfer", "ewc_fisher")


def t_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval); half-width nan for one value."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan")
    return mean, float(stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n))


def run_cell(args, strategy: str, seed: int, out: Path) -> dict:
    from hackforge_edge.recipes.train_and_export import TrainExportConfig, run

    cfg = TrainExportConfig(model=args.model, strategy=strategy, seed=seed, epochs=args.epochs,
                            image_size=args.image_size, skip_profile=True, progress=False,
                            out=str(out), overwrite=True, ewc_lambda=args.ewc_lambda,
                            l2sp_alpha=args.l2sp_alpha, l2sp_beta=args.l2sp_beta)
    t0 = time.perf_counter()
    run(cfg, say=lambda _msg: None)
    wall_total = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    carbon = json.loads((out / "training_carbon.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    phases = [p for p in carbon["phases"] if p["phase"] in TRAIN_PHASES]
    ret = metrics.get("source_retention") or {}
    history = manifest["training"]["history"]
    penalties = [h.get("penalty_to_task_loss") for h in history if h.get("penalty_to_task_loss") is not None]
    return {
        "strategy": strategy, "seed": seed,
        "target_accuracy": metrics["accuracy"],
        "source_accuracy_before": ret.get("accuracy_before"),
        "source_accuracy_after": ret.get("accuracy_after"),
        "source_accuracy_after_source_head": ret.get("accuracy_after_source_head"),
        "retention": ret.get("retention"),
        "trainable_params": max(h.get("trainable_params") or 0 for h in history)
        or manifest["params"]["trainable_params"],
        "train_energy_j": sum(p["energy_j"] for p in phases),
        "energy_kind": carbon.get("kind"), "energy_methods": carbon.get("methods"),
        "train_wall_s": sum(p["duration_s"] for p in phases),
        "pipeline_wall_s": wall_total,
        "penalty_to_task_loss_last_epoch": penalties[-1] if penalties else None,
    }


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for s in dict.fromkeys(r["strategy"] for r in rows):
        sub = [r for r in rows if r["strategy"] == s]
        cell = {"strategy": s, "n_seeds": len(sub)}
        for key in ("target_accuracy", "source_accuracy_after", "retention", "trainable_params",
                    "train_energy_j", "train_wall_s"):
            vals = [r[key] for r in sub if r[key] is not None]
            cell[key] = t_interval(vals) if vals else None
        out.append(cell)
    return out


def paired_vs(rows: list[dict], base: str, key: str) -> dict[str, tuple[float, float]]:
    """strategy -> (mean, 95 % t half-width) of (strategy - base) paired by seed."""
    by = {(r["strategy"], r["seed"]): r[key] for r in rows}
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in rows):
        if s == base:
            continue
        d = [by[(s, seed)] - by[(base, seed)] for (st, seed) in by
             if st == s and (base, seed) in by and by[(s, seed)] is not None and by[(base, seed)] is not None]
        if d:
            out[s] = t_interval(d)
    return out


def _ci(cell, scale=1.0, fmt="{:.3f}") -> str:
    if cell is None:
        return "n/a"
    m, h = cell
    return fmt.format(m * scale) + ("" if math.isnan(h) else " ± " + fmt.format(h * scale))


def markdown(rows: list[dict], summary: list[dict], load: dict, args) -> str:
    lines = [f"Strategies on the default synthetic task ({args.model}, {args.image_size} px, "
             f"{args.epochs} epochs), seeds {args.seeds}; mean ± 95 % t half-width over seeds.", "",
             "| strategy | target acc | source acc after | retention | trainable params | "
             "train energy (J, estimated) | train wall (s) |", "|---|---|---|---|---|---|---|"]
    for c in summary:
        lines.append(f"| {c['strategy']} | {_ci(c['target_accuracy'])} | {_ci(c['source_accuracy_after'])} | "
                     f"{_ci(c['retention'])} | {_ci(c['trainable_params'], fmt='{:,.0f}')} | "
                     f"{_ci(c['train_energy_j'], fmt='{:.0f}')} | {_ci(c['train_wall_s'], fmt='{:.1f}')} |")
    before = sorted({r["source_accuracy_before"] for r in rows if r["source_accuracy_before"] is not None})
    lines += ["", f"Source model's own source test accuracy (before transfer), per seed: {before}.", "",
              "Paired by seed against finetune (points of accuracy, mean ± 95 % t half-width):", "",
              "| strategy | target acc - finetune | source acc after - finetune |", "|---|---|---|"]
    dt = paired_vs(rows, "finetune", "target_accuracy")
    ds = paired_vs(rows, "finetune", "source_accuracy_after")
    for s in dt:
        lines.append(f"| {s} | {_ci(dt[s], 100, '{:+.1f}')} | {_ci(ds.get(s), 100, '{:+.1f}')} |")
    kinds = sorted({str(r["energy_kind"]) + " (" + "+".join(r["energy_methods"] or []) + ")" for r in rows})
    lines += ["", f"Energy: {', '.join(kinds)}; phases {', '.join(TRAIN_PHASES)} only (no export, "
              "no source pretraining). Load average (1/5/15 min) at start "
              f"{load['start']}, at end {load['end']}; machine shared, wall times are noisy.", ""]
    return "\n".join(lines)


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="default: the no-argument run's model")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    p.add_argument("--ewc-lambda", type=float, default=None)
    p.add_argument("--l2sp-alpha", type=float, default=None)
    p.add_argument("--l2sp-beta", type=float, default=None)
    p.add_argument("--out", type=Path, default=None, help="write rows + table here (json, md)")
    args = p.parse_args()
    from hackforge_edge.recipes.train_and_export import TrainExportConfig

    d = TrainExportConfig()
    for k in ("model", "image_size", "epochs", "ewc_lambda", "l2sp_alpha", "l2sp_beta"):
        if getattr(args, k) is None:
            setattr(args, k, getattr(d, k))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    load = {"start": _load()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="hf-bench-strategies-") as tmp:
        for seed in args.seeds:
            for s in args.strategies:
                row = run_cell(args, s, seed, Path(tmp) / f"{s}-{seed}")
                rows.append(row)
                print(json.dumps(row), flush=True)
    load["end"] = _load()
    summary = summarise(rows)
    md = markdown(rows, summary, load, args)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "strategies.json").write_text(json.dumps(
            {"rows": rows, "summary": summary, "load_average": load, "args": vars(args)},
            default=str, indent=1))
        (args.out / "strategies.md").write_text(md)


if __name__ == "__main__":
    main()
