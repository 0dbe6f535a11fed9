"""Transfer strategies side by side on the default synthetic task, over seeds.

For every strategy (scratch, frozen, finetune, lora, progressive, ewc, l2sp) and seed, runs the
training steps of ``train-and-export`` in process (the default model, data and recipe unless
flags say otherwise; no ONNX export, which is the same for every strategy), on the CPU:

* target accuracy (measured on the 200-image target test split),
* source accuracy after transfer on the 200-image source test split (the transferred model as
  deployed; the source model scores ``before``), and retention = after / before,
* trainable parameters (counted; progressive: the count of its last epoch, all groups),
* training energy: the toolkit's meter around training (+ EWC's Fisher when computed); on a
  machine without power counters an ESTIMATE (process CPU time x TDP share), labelled so,
* wall time of the same windows (seconds).

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
from pathlib import Path

STRATEGIES = ("scratch", "frozen", "finetune", "lora", "progressive", "ewc", "l2sp")


def t_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval); half-width nan for one value."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan")
    return mean, float(stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n))


class Cell:
    """Per-seed state shared by the strategies: data, source task, meter."""

    def __init__(self, args, seed: int):
        from hackforge_edge.data.loader import load_dataset
        from hackforge_edge.energy.meter import make_meter
        from hackforge_edge.recipes.strategy_steps import load_source
        from hackforge_edge.recipes.train_and_export import TrainExportConfig, _local_tdp

        self.cfg = TrainExportConfig(model=args.model, seed=seed, epochs=args.epochs,
                                     image_size=args.image_size, progress=False, device="cpu",
                                     lr=args.lr,
                                     ewc_lambda=args.ewc_lambda, l2sp_alpha=args.l2sp_alpha,
                                     l2sp_beta=args.l2sp_beta)
        self.splits = load_dataset(None, image_size=args.image_size, seed=seed)
        tdp_w, origin = _local_tdp(self.cfg)
        self.meter = make_meter("cpu", tdp_w=tdp_w, tdp_origin=origin)
        self.source = load_source(self.cfg)  # pretrains the seed's source model on a miss (not counted)


def run_cell(cell: Cell, strategy: str) -> dict:
    """The pipeline's training steps for one strategy (no export: it is the same for all)."""
    import dataclasses

    from hackforge_edge.models.registry import create_model
    from hackforge_edge.recipes.strategy_steps import strategy_options
    from hackforge_edge.strategies.registry import apply_strategy, build_hooks
    from hackforge_edge.strategies.source_task import source_retention
    from hackforge_edge.training.loop import evaluate, train

    cfg = dataclasses.replace(cell.cfg, strategy=strategy)
    splits, meter, seed = cell.splits, cell.meter, cfg.seed
    weights = "none" if strategy == "scratch" else cfg.weights
    model = create_model(cfg.model, len(splits.class_names), weights, image_size=cfg.image_size,
                         seed=seed, source_seed=seed, device="cpu")
    opts = strategy_options(cfg)
    model, params = apply_strategy(model, strategy, options=opts)
    energy_j = wall_s = 0.0
    kinds = set()
    meter.begin("setup")
    hooks = build_hooks(model, strategy, opts, source=cell.source, device="cpu")  # ewc: Fisher
    m = meter.end("setup")
    if strategy == "ewc":  # the Fisher is cached per seed; count what this run spent on it
        energy_j, wall_s = m.energy_j_total, m.duration_s
        kinds.add(f"{m.kind} ({m.method})")
    meter.begin("train")
    result = train(model, splits, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                   seed=seed, device="cpu", progress=False, hooks=hooks)
    m = meter.end("train")
    energy_j, wall_s = energy_j + m.energy_j_total, wall_s + m.duration_s
    kinds.add(f"{m.kind} ({m.method})")
    metrics = evaluate(model, splits.test, preprocess=splits.preprocess, device="cpu")
    ret = source_retention(model, cell.source, target_class_names=list(splits.class_names),
                           device="cpu") if cell.source is not None else {}
    penalties = [h.penalty_to_task_loss for h in result.history if h.penalty_to_task_loss is not None]
    fisher = next((h.info for h in hooks if hasattr(h, "info")), None)
    return {
        "strategy": strategy, "seed": seed,
        "target_accuracy": metrics["accuracy"],
        "source_accuracy_before": ret.get("accuracy_before"),
        "source_accuracy_after": ret.get("accuracy_after"),
        "source_accuracy_after_source_head": ret.get("accuracy_after_source_head"),
        "retention": ret.get("retention"),
        # progressive: the most parameters that trained in any epoch (all groups by the end)
        "trainable_params": max(h.trainable_params or 0 for h in result.history) or params.trainable_params,
        "train_energy_j": energy_j, "energy_kind": sorted(kinds),
        "train_wall_s": wall_s,
        "fisher_cache_hit": None if fisher is None else fisher.get("cache_hit"),
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
    half = fmt.replace("+", "")  # the half-width carries no sign
    return fmt.format(m * scale) + ("" if math.isnan(h) else " ± " + half.format(h * scale))


def markdown(rows: list[dict], summary: list[dict], load: dict, args) -> str:
    lines = [f"Strategies on the synthetic task ({args.model}, {args.image_size} px, {args.epochs} "
             f"epochs, lr {args.lr:g}, ewc lambda {args.ewc_lambda:g}, l2sp alpha {args.l2sp_alpha:g} "
             f"beta {args.l2sp_beta:g}), seeds {args.seeds}; mean ± 95 % t half-width over seeds.", "",
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
    kinds = sorted({k for r in rows for k in r["energy_kind"]})
    lines += ["", f"Energy: {', '.join(kinds)}: training (and EWC's Fisher when computed, not "
              "when read from its cache) only; no export, no source pretraining. Load average (1/5/15 min) at start "
              f"{load['start']}, at end {load['end']}; machine shared, wall times are noisy.", ""]
    return "\n".join(lines)


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="default: the no-argument run's model")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="AdamW peak lr (default: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                   help="run in this order, every seed of one before the next")
    p.add_argument("--ewc-lambda", type=float, default=None)
    p.add_argument("--l2sp-alpha", type=float, default=None)
    p.add_argument("--l2sp-beta", type=float, default=None)
    p.add_argument("--out", type=Path, default=None, help="write rows + table here (json, md)")
    p.add_argument("--from-rows", type=Path, default=None,
                   help="only summarise JSON rows (one per line) printed by an earlier run")
    args = p.parse_args()
    from hackforge_edge.recipes.train_and_export import TrainExportConfig

    d = TrainExportConfig()
    for k in ("model", "image_size", "epochs", "lr", "ewc_lambda", "l2sp_alpha", "l2sp_beta"):
        if getattr(args, k) is None:
            setattr(args, k, getattr(d, k))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    load = {"start": _load()}
    rows = []
    if args.from_rows:
        rows = [json.loads(ln) for ln in args.from_rows.read_text().splitlines() if ln.startswith("{")]
        args.seeds = sorted({r["seed"] for r in rows})
        args.strategies = []
        load = {"start": rows[0].get("load_average"), "end": rows[-1].get("load_average")}
    cells: dict[int, Cell] = {}
    # strategy-major: an interrupted run still holds every seed of the strategies listed first
    for s in (args.strategies if not args.from_rows else []):
        for seed in args.seeds:
            if seed not in cells:
                cells[seed] = Cell(args, seed)
            row = run_cell(cells[seed], s)
            row["load_average"] = _load()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if not args.from_rows:
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
