"""Does the negative-transfer gate predict harm? 13 transfer setups with measured outcomes.

Each scenario pairs a source model (trained here on synthetic tiles) with a target domain.
Ground truth: test accuracy of fine-tuning from the source minus test accuracy of training from
scratch (same architecture, data, epochs, lr, seed), per seed; mean over seeds with a paired
t interval (95 %). Harmful = interval below zero, beneficial = above, else neutral. The gate
runs once per scenario and seed on the target's labelled training split (forward passes only).

Prints per scenario the gate's prediction (seed 0, and the count of "hurts" over seeds) and the
measured gap; then the detection and false-alarm rates (Wilson 95 % intervals), the Spearman
rank correlation of each score with the measured gap, and the compute the gate and its monitor
would have saved.

    flock /tmp/hf-bench.lock .venv/bin/python benchmarks/gate_scenarios.py [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

# source name -> (description, how its training labels are made, epochs)
SOURCES = {
    "good": "source-domain tiles, true benign/malignant labels",
    "permuted": "source-domain tiles, labels randomly permuted (3x the epochs)",
    "texture": "unrelated texture task: sharp vs blurred source tiles, labels ignore malignancy",
    "shortcut": "source tiles with a green marker on every malignant tile (a shortcut)",
    "barely": "true labels, but one epoch on 32 tiles (barely moved from its init)",
}

# (scenario, source, target, design expectation)
SCENARIOS = [
    ("same-domain", "good", "same", "benign"),
    ("stain-shift", "good", "stain", "benign"),
    ("blur-shift", "good", "blur", "benign"),
    ("noise-shift", "good", "noise", "benign"),
    ("dim-lamp", "good", "bright", "benign"),
    ("all-shifts", "good", "full", "benign"),
    ("permuted->stain", "permuted", "stain", "harmful"),
    ("permuted->all", "permuted", "full", "harmful"),
    ("texture->stain", "texture", "stain", "harmful"),
    ("texture->all", "texture", "full", "harmful"),
    ("shortcut-flips", "shortcut", "shortcut", "harmful"),
    ("barely->stain", "barely", "stain", "neutral"),
    ("barely->all", "barely", "full", "neutral"),
]


def domains():
    from hackforge_edge.data.synthetic import SOURCE, TARGET

    def d(name, **kw):
        return replace(SOURCE, name=name, **kw)

    return {
        "same": d("t-same"),
        "stain": d("t-stain", h_vec=TARGET.h_vec, e_vec=TARGET.e_vec, stain_scale=0.8),
        "blur": d("t-blur", blur_sigma_px=1.2),
        "noise": d("t-noise", noise_std=10.0),
        "bright": d("t-bright", brightness=0.85),
        "full": TARGET,
        "shortcut": d("t-shortcut"),
        "blurred-src": d("s-blurred", blur_sigma_px=1.5),
    }


def add_marker(images: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a 4 x 4 px saturated green square at a random place on the tiles in ``mask``."""
    out = images.copy()
    s = images.shape[1]
    for i in np.flatnonzero(mask):
        y, x = rng.integers(0, s - 4, 2)
        out[i, y:y + 4, x:x + 4] = (40, 220, 60)
    return out


@dataclass
class Sizes:
    """Images per split, epochs, AdamW peak lr (cosine), batch. Small target sets on purpose:
    transfer matters most (for better or worse) when the target has little labelled data."""

    image: int = 32
    source_train: int = 300
    target_train: int = 80
    target_val: int = 60
    target_test: int = 200
    epochs: int = 10
    source_epochs: int = 8
    lr: float = 3e-3
    batch: int = 16


def make_splits(images, labels, val=None, test=None):
    from hackforge_edge.data.preprocess import ImagePreprocess
    from hackforge_edge.data.splits import DatasetSplits, Split

    pre = ImagePreprocess(image_size=images.shape[1:3])
    empty = Split(images[:0], labels[:0])
    return DatasetSplits(Split(images, labels), val or empty, test or empty, ["benign", "malignant"],
                         pre, {})


def target_data(name: str, seed: int, sz: Sizes):
    """(train, val, test) Splits of target domain ``name`` for ``seed``."""
    from hackforge_edge.data import synthetic
    from hackforge_edge.data.splits import Split

    dom = domains()[name]
    out = []
    for stream, n in enumerate((sz.target_train, sz.target_val, sz.target_test)):
        x, y = synthetic.generate(n, image_size=sz.image, domain=dom, seed=100 + seed, stream=stream)
        if name == "shortcut":
            rng = np.random.default_rng([seed, stream, 77])
            # train/val: the marker now flags BENIGN tiles (70 % of them); test: marker at random
            mask = (y == 0) & (rng.random(n) < 0.7) if stream < 2 else rng.random(n) < 0.35
            x = add_marker(x, mask, rng)
        out.append(Split(x, y))
    return out


def train_source(name: str, sz: Sizes, path: str) -> dict:
    import torch

    from hackforge_edge.data import synthetic
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.training.loop import train

    n, epochs = sz.source_train, sz.source_epochs
    x, y = synthetic.generate(n, image_size=sz.image, domain="source", seed=7, stream=0)
    rng = np.random.default_rng(11)
    if name == "permuted":
        y, epochs = rng.permutation(y), 3 * epochs
    elif name == "texture":
        xb, _ = synthetic.generate(n // 2, image_size=sz.image, domain=domains()["blurred-src"],
                                   seed=7, stream=1)
        x = np.concatenate([x[: n - n // 2], xb])
        y = np.r_[np.zeros(n - n // 2, np.int64), np.ones(n // 2, np.int64)]
    elif name == "shortcut":
        x = add_marker(x, y == 1, rng)
    elif name == "barely":
        x, y, epochs = x[:32], y[:32], 1
    model = create_model("tinycnn", 2, "none", seed=3)
    t0 = time.perf_counter()
    train(model, make_splits(x, y), epochs=epochs, lr=sz.lr, batch_size=sz.batch, seed=3,
          progress=False, validate=False)
    torch.save(model.state_dict(), path)
    return {"train_s": time.perf_counter() - t0, "source_train_accuracy": None}


def fit_target(start: str, splits, seed: int, sz: Sizes) -> dict:
    """Fine-tune from ``start`` (a state_dict path; "none" = scratch) and score on test."""
    from hackforge_edge.models.registry import create_model, reset_classifier
    from hackforge_edge.strategies.registry import apply_strategy
    from hackforge_edge.training.loop import evaluate, train

    model = create_model("tinycnn", 2, start, seed=seed)
    if start != "none":
        reset_classifier(model, 2, seed=seed)  # target classes get a fresh head, as in the pipeline
    model, _ = apply_strategy(model, "finetune" if start != "none" else "scratch", seed=seed)
    res = train(model, splits, epochs=sz.epochs, lr=sz.lr, batch_size=sz.batch, seed=seed,
                progress=False)
    acc = evaluate(model, splits.test, preprocess=splits.preprocess)["accuracy"]
    return {"acc": acc, "train_s": res.duration_s,
            "val_history": [r.val_accuracy for r in res.history]}


def run_gate(start_path: str, tr, val, source_x, seed: int):
    from hackforge_edge.gate.decide import decide, load_thresholds
    from hackforge_edge.gate.features import forward_features, load_start
    from hackforge_edge.recipes.gate import _probe_baseline, assess_starts

    th = load_thresholds()["gate"]
    t0 = time.perf_counter()
    splits = make_splits(tr.images, tr.labels, val=val)
    starts = [load_start(w, model="tinycnn", image_size=tr.images.shape[1], seed=seed)
              for w in (start_path, "none")]
    ev = assess_starts(starts, tr.to_nchw(splits.preprocess), tr.labels,
                       splits.preprocess.batch(list(source_x)), th=th, seed=seed)
    dec = {d.name: d for d in decide(ev, reference="none", thresholds=th)}
    base = _probe_baseline(starts[1], tr.to_nchw(splits.preprocess), tr.labels, splits, th, "cpu",
                           forward_features)
    return dec[start_path], dec["none"], base, time.perf_counter() - t0


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    from scipy.stats import t

    m = float(np.mean(d))
    if len(d) < 2:
        return m, -np.inf, np.inf
    half = float(t.ppf(0.5 + level / 2, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d)))
    return m, m - half, m + half


def wilson(k: int, n: int) -> str:
    from scipy.stats import binomtest

    if n == 0:
        return "n/a (no such scenario measured)"
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return f"{k}/{n} = {k / n:.0%} [{ci.low:.0%}, {ci.high:.0%}]"


def monitor_epochs_saved(history, baseline_acc, epochs) -> int:
    from hackforge_edge.gate.monitor import TransferMonitor

    mon = TransferMonitor.from_thresholds(baseline_acc, "probe", epochs, enforce=True)
    for e, acc in enumerate(history, 1):
        rec = type("R", (), {"val_accuracy": acc, "val_loss": None})()
        if mon.on_epoch_end(None, e, rec):
            break
    return mon.epochs_left


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4 scenarios, smaller splits (smoke run)")
    ap.add_argument("--workdir", default=None, help="where source models go (default: a temp dir)")
    args = ap.parse_args(argv)
    import tempfile

    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    sz = Sizes()
    scenarios = SCENARIOS
    if args.quick:
        sz = replace(sz, source_train=160, target_val=40, target_test=100, epochs=5)
        scenarios = [s for s in SCENARIOS if s[0] in ("stain-shift", "permuted->stain",
                                                       "texture->all", "barely->stain")]
    work = args.workdir or tempfile.mkdtemp(prefix="hf-gate-bench-")
    t_all = time.perf_counter()
    print(f"gate scenarios: {len(scenarios)} scenarios x {args.seeds} seeds, tinycnn at {sz.image} px, "
          f"target {sz.target_train}/{sz.target_val}/{sz.target_test} train/val/test, {sz.epochs} "
          f"epochs, lr {sz.lr}; load average {os.getloadavg()[0]:.2f}", flush=True)
    src_paths = {}
    for name in sorted({s[1] for s in scenarios}):
        path = os.path.join(work, f"{name}.pt")
        info = train_source(name, sz, path)
        src_paths[name] = path
        print(f"  source {name}: trained in {info['train_s']:.1f} s ({SOURCES[name]})", flush=True)
    from hackforge_edge.data import synthetic

    source_sample, _ = synthetic.generate(sz.target_train, image_size=sz.image, domain="source",
                                          seed=8, stream=0)
    scratch, data = {}, {}
    for tgt in sorted({s[2] for s in scenarios}):
        for seed in range(args.seeds):
            tr, va, te = target_data(tgt, seed, sz)
            data[tgt, seed] = (tr, va, te)
            scratch[tgt, seed] = fit_target("none", make_splits(tr.images, tr.labels, va, te), seed, sz)
    print(f"  scratch runs done ({time.perf_counter() - t_all:.0f} s)", flush=True)

    rows = []
    for name, src, tgt, design in scenarios:
        gaps, preds, scores, t_transfer, t_gate, mon_saved = [], [], [], 0.0, 0.0, 0
        for seed in range(args.seeds):
            tr, va, te = data[tgt, seed]
            res = fit_target(src_paths[src], make_splits(tr.images, tr.labels, va, te), seed, sz)
            gaps.append(res["acc"] - scratch[tgt, seed]["acc"])
            t_transfer += res["train_s"]
            d, ref, base, gs = run_gate(src_paths[src], tr, va, source_sample, seed)
            t_gate += gs
            preds.append(d.verdict)
            mon_saved += monitor_epochs_saved(res["val_history"], base["val_accuracy"], sz.epochs)
            e, r = d.evidence, ref.evidence
            scores.append({"knn": e.knn_accuracy - r.knn_accuracy,
                           "linear": e.linear_probe_accuracy - r.linear_probe_accuracy,
                           "logme": e.logme - r.logme, "leep": e.leep,
                           "h_score": e.h_score - r.h_score,
                           "h_shrunk": e.h_score_shrunk - r.h_score_shrunk,
                           "mmd2": e.shift["mmd"]["mmd2"], "pad": e.shift["pad"]["pad"],
                           "ks_frac": e.shift["ks"]["n_shifted"] / e.shift["ks"]["n_features"]})
        m, lo, hi = t_interval(np.array(gaps))
        truth = "harmful" if hi < 0 else "beneficial" if lo > 0 else "neutral"
        rows.append({"name": name, "design": design, "truth": truth, "gap": (m, lo, hi),
                     "pred": preds[0], "n_hurts": sum(p == "hurts" for p in preds),
                     "scores": {k: float(np.mean([s[k] for s in scores])) for k in scores[0]},
                     "t_transfer": t_transfer, "t_gate": t_gate, "mon_saved": mon_saved})
        print(f"  {name}: gap {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({truth}); gate {preds}", flush=True)

    print()
    print(f"{'scenario':18} {'design':8} {'gate (seed 0)':13} {'hurts/seeds':11} "
          f"{'kNN diff':>8} {'LogME diff':>10} {'measured gap [95% CI]':>26} {'truth':10} monitor-cut")
    for r in rows:
        m, lo, hi = r["gap"]
        print(f"{r['name']:18} {r['design']:8} {r['pred']:13} {r['n_hurts']}/{args.seeds:<9} "
              f"{r['scores']['knn']:+8.3f} {r['scores']['logme']:+10.3f} "
              f"{m:+8.3f} [{lo:+.3f}, {hi:+.3f}]   {r['truth']:10} "
              f"{r['mon_saved']}/{args.seeds * sz.epochs} epochs")
    harmful = [r for r in rows if r["truth"] == "harmful"]
    other = [r for r in rows if r["truth"] != "harmful"]
    print()
    print("detection rate (predicted hurts | measured harmful):  "
          + wilson(sum(r["pred"] == "hurts" for r in harmful), len(harmful)))
    print("false-alarm rate (predicted hurts | not harmful):      "
          + wilson(sum(r["pred"] == "hurts" for r in other), len(other)))
    designed = [r for r in rows if r["design"] == "harmful"]
    print("by design (harmful-by-construction, not measured):      "
          + wilson(sum(r["pred"] == "hurts" for r in designed), len(designed)))
    print()
    gap = np.array([r["gap"][0] for r in rows])
    print("Spearman rank correlation of each score with the measured gap (across scenarios):")
    for k in rows[0]["scores"]:
        vals = np.array([r["scores"][k] if r["scores"][k] is not None else np.nan for r in rows])
        ok = np.isfinite(vals)
        if ok.sum() >= 3:
            rho, p = spearmanr(vals[ok], gap[ok])
            print(f"  {k:9} rho {rho:+.2f} (p {p:.3f}, n {int(ok.sum())})")
    total = sum(r["t_transfer"] for r in rows)
    saved = sum(r["t_transfer"] for r in rows if r["pred"] == "hurts")
    gate_s = sum(r["t_gate"] for r in rows)
    mon = sum(r["mon_saved"] for r in rows)
    print()
    print(f"compute: transfer training {total:.0f} s measured over all scenarios x seeds; the gate "
          f"(seed-0 verdict applied to every seed) would have skipped {saved:.0f} s "
          f"({saved / total:.0%}), at a gate cost of {gate_s:.0f} s (forward passes + scores, all "
          f"runs). Online monitor (probe baseline, patience from thresholds.yaml), replayed on the "
          f"recorded val curves: {mon} of {len(rows) * args.seeds * sz.epochs} epochs not run.")
    print(f"wall time {time.perf_counter() - t_all:.0f} s; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
