"""Merging benchmark on the synthetic default: three fine-tunes of one source model, merged.

Three target variants of the synthetic histopathology domain, each its own task (same two
classes, benign/malignant):
  * stain  - the target lab's stain vectors and strength, otherwise the source scanner
  * blur   - the source stain, a soft lens (Gaussian blur sigma 1.4 px) and a noisier sensor
  * balance - the full target domain with 20 % malignant tiles (train, val and test)
Each task fine-tunes the cached source model (``models.source``, every parameter trainable,
the same seeded fresh head) on 160 train / 80 val images; every figure is accuracy on the
task's own 200 held-out test images (measured, PyTorch, CPU). Then the three are merged with
every method (density 0.2, 0.5, 0.8 where the method prunes; SLERP takes exactly two inputs,
so it merges stain+blur), each with BatchNorm statistics re-estimated on 128 training images per
task (``torch.optim.swa_utils.update_bn``); task arithmetic is also shown without that update.
Rows: each input on every task, the base (source backbone + each task's head, = lambda 0),
each merge, and the ensemble of the three inputs (mean softmax, three backbone passes) as the
upper bound of what one merged backbone could do.

At 200 test images a 95 % binomial interval is about +-6 points at 80 % accuracy: differences
under ~6 points between rows are within noise. DARE is repeated over ``--dare-seeds`` mask
seeds (mean and range shown).

    flock /tmp/hf-bench.lock python benchmarks/merging.py [--model resnet18 --image-size 64
        --epochs 2 --dare-seeds 0,1 --cache DIR --json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace

import numpy as np

DENSITIES = (0.2, 0.5, 0.8)


def _task_splits(name: str, image_size: int, seed: int):
    from hackforge_edge.data import synthetic
    from hackforge_edge.data.preprocess import ImagePreprocess
    from hackforge_edge.data.splits import DatasetSplits, Split

    src, tgt = synthetic.SOURCE, synthetic.TARGET
    dom, frac = {
        "stain": (replace(src, name="stain", h_vec=tgt.h_vec, e_vec=tgt.e_vec, stain_scale=tgt.stain_scale,
                          stain_jitter=tgt.stain_jitter), 0.5),
        "blur": (replace(src, name="blur", blur_sigma_px=1.4, noise_std=6.0), 0.5),
        "balance": (replace(tgt, name="balance"), 0.2),
    }[name]
    parts = []
    for stream, n in enumerate((160, 80, 200)):
        x, y = synthetic.generate(n, image_size=image_size, domain=dom, seed=seed, stream=stream,
                                  malignant_fraction=frac)
        parts.append(Split(x, y, [f"{name}-{stream}-{i}" for i in range(n)]))
    return DatasetSplits(*parts, list(synthetic.CLASS_NAMES), ImagePreprocess(image_size=(image_size,) * 2),
                         {"kind": "synthetic", "task": name, "malignant_fraction": frac})


def _finetune(model_name, splits, image_size, epochs, seed):
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.strategies.registry import apply_strategy
    from hackforge_edge.training.loop import train

    model = create_model(model_name, 2, "source", image_size=image_size, seed=seed, source_seed=seed)
    model, _ = apply_strategy(model, "finetune", seed=seed)
    t0 = time.perf_counter()
    train(model, splits, epochs=epochs, lr=1e-3, batch_size=32, seed=seed, device="cpu", progress=False)
    return model.cpu().eval(), time.perf_counter() - t0


def _acc_row(result, name):
    r = result["rows"][name]
    return {t: (r[t]["accuracy"] if r.get(t) else None) for t in result["tasks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dare-seeds", default="0")
    ap.add_argument("--bn-images", type=int, default=128)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache", default=None, help="Directory keeping the fine-tuned states between runs.")
    ap.add_argument("--resume", action="store_true", help="Keep the merge rows already in --json "
                    "(written after every merge) and run only the missing ones.")
    ap.add_argument("--magnitude-prune", action="store_true", help="Also PEFT's magnitude_prune.")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from hackforge_edge.merging.evaluate import Task, evaluate_models
    from hackforge_edge.merging.methods import MergeSettings
    from hackforge_edge.models.source import get_source_model
    from hackforge_edge.models.weights_hash import state_dict_sha256
    from hackforge_edge.recipes.merge import merge_models

    t_start = time.perf_counter()
    source, info = get_source_model(args.model, image_size=args.image_size, seed=args.seed, progress=False)
    base_state = source.state_dict()
    names = ("stain", "blur", "balance")
    tasks = [Task(n, ["benign", "malignant"], _task_splits(n, args.image_size, args.seed)) for n in names]
    inputs, states = [], []
    for t in tasks:
        path = (os.path.join(args.cache, f"{args.model}_{args.image_size}px_e{args.epochs}_s{args.seed}_{t.name}.pt")
                if args.cache else None)
        if path and os.path.isfile(path):
            from hackforge_edge.merging.multitask import single_task_model

            model = single_task_model(args.model, torch.load(path, weights_only=True), 2)
            print(f"fine-tuned {t.name}: loaded from {path}", flush=True)
        else:
            model, secs = _finetune(args.model, t.splits, args.image_size, args.epochs, args.seed)
            print(f"fine-tuned {t.name} in {secs:.0f} s", flush=True)
            if path:
                os.makedirs(args.cache, exist_ok=True)
                torch.save(model.state_dict(), path)
        inputs.append(model)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    # inputs, base and ensemble once (a tiny merge supplies the base model with every head)
    _, base_model, _ = merge_models(args.model, base_state, states, tasks,
                                    MergeSettings("task_arithmetic", 3), update_bn=False)
    ref = evaluate_models(tasks, inputs, {"base": base_model}, device="cpu")
    rows = {k: _acc_row(ref, k) for k in ref["rows"]}
    extra: dict[str, dict] = {f"input:{t.name}": {"predicts_one_class": _one_class_single(model, t)}
                              for t, model in zip(tasks, inputs)}
    extra["base"] = {"predicts_one_class": _one_class(base_model, tasks)}
    extra["ensemble"] = {"predicts_one_class": _one_class_ensemble(inputs, tasks)}
    if args.resume and args.json and os.path.isfile(args.json):
        with open(args.json) as fh:
            done = json.load(fh)
        for label, r in done.get("rows", {}).items():
            if label not in rows:  # inputs, base and ensemble were just measured again
                rows[label], extra[label] = r, done.get("merge", {}).get(label, {})
        print(f"resumed {len(done.get('rows', {}))} rows from {args.json}", flush=True)

    def save():
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"rows": rows, "merge": extra, "args": vars(args)}, fh, indent=1, default=str)

    def run(label, settings, sub=None, update_bn=True):
        if label in rows:
            return
        ts = [tasks[i] for i in sub] if sub else tasks
        ss = [states[i] for i in sub] if sub else states
        merged, _, details = merge_models(args.model, base_state, ss, ts, settings, update_bn=update_bn,
                                          bn_images_per_task=args.bn_images)
        res = evaluate_models(ts, [], {label: merged}, device="cpu", ensemble=False)
        rows[label] = {t.name: None for t in tasks} | _acc_row(res, label)
        extra[label] = {**details["merge"], "weights_sha256": state_dict_sha256(merged.state_dict()),
                        "predicts_one_class": _one_class(merged, ts)}
        print(f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[label].items() if v is not None), flush=True)
        save()

    run("task_arithmetic (no BN update)", MergeSettings("task_arithmetic", 3), update_bn=False)
    run("task_arithmetic", MergeSettings("task_arithmetic", 3))
    run("linear", MergeSettings("linear", 3))
    run("slerp (stain+blur)", MergeSettings("slerp", 2), sub=(0, 1))
    dare_seeds = [int(s) for s in args.dare_seeds.split(",") if s.strip()]
    for d in DENSITIES:
        run(f"ties d={d}", MergeSettings("ties", 3, density=d))
        if args.magnitude_prune:
            run(f"magnitude_prune d={d}", MergeSettings("magnitude_prune", 3, density=d))
        for m in ("dare_linear", "dare_ties"):
            for s in dare_seeds:
                run(f"{m} d={d} seed={s}", MergeSettings(m, 3, density=d, seed=s))
    save()
    _print(rows, extra, tasks, info, args, time.perf_counter() - t_start)


def _one_class_single(model, task) -> bool:
    """True when ``model`` gives every test image of ``task`` the same class."""
    from hackforge_edge.training.loop import predict_proba

    p = predict_proba(model, task.splits.test.to_nchw(task.splits.preprocess), device="cpu")
    return bool(len(np.unique(p.argmax(1))) == 1)


def _one_class_ensemble(inputs, tasks) -> bool:
    from hackforge_edge.training.loop import predict_proba

    for t in tasks:
        x = t.splits.test.to_nchw(t.splits.preprocess)
        p = np.mean([predict_proba(m, x, device="cpu") for m in inputs], axis=0)
        if len(np.unique(p.argmax(1))) > 1:
            return False
    return True


def _one_class(multi_head, tasks) -> bool:
    from hackforge_edge.merging.evaluate import head_view

    return all(_one_class_single(head_view(multi_head, j), t) for j, t in enumerate(tasks))


def _ci(p, n=200):
    return 1.96 * math.sqrt(max(p * (1 - p), 1e-9) / n)


def _print(rows, extra, tasks, info, args, secs):
    names = [t.name for t in tasks]
    print(f"\n{args.model} at {args.image_size} px, source model {'cache hit' if info.get('cache_hit') else 'trained'}; "
          f"{args.epochs} fine-tuning epochs per task; 200 test images per task; {secs:.0f} s; "
          f"load average {os.getloadavg()}")
    print("| model | " + " | ".join(names) + " | mean |\n|---" * 1 + "|---" * (len(names) + 1) + "|")
    for label, r in rows.items():
        if label.startswith("_"):
            continue
        vals = [r.get(n) for n in names]
        got = [v for v in vals if v is not None]
        print(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals)
              + f" | {np.mean(got):.3f} |" if got else " | - |")
    sl = extra.get("slerp (stain+blur)", {}).get("slerp", {})
    print(f"\nSLERP: {sl.get('linear_fallbacks')} of {sl.get('tensors')} tensors nearly parallel "
          f"(|cos| > {sl.get('parallel_cos_threshold')}): linear interpolation there.")
    ties = {}
    for label, r in rows.items():
        ties.setdefault(tuple(None if r.get(n) is None else round(r[n], 6) for n in names), []).append(label)
    for labels in ties.values():
        if len(labels) < 2:
            continue
        known = [extra[lb]["weights_sha256"] for lb in labels if extra.get(lb, {}).get("weights_sha256")]
        one = [lb for lb in labels if extra.get(lb, {}).get("predicts_one_class")]
        why = []
        if len(one) == len(labels):
            why.append("every one of them gives every test image the same class (the majority-class rate)")
        if "linear" in labels and "task_arithmetic" in labels:
            why.append("linear is task arithmetic with weights 1/n and lambda 1 by construction (same weights)")
        if len(known) == len(labels) and len(set(known)) == 1:
            why.append("identical merged weights (same sha256)")
        elif len(set(known)) > 1:
            why.append(f"{len(set(known))} different merged weight sets reaching the same counts "
                       "(within the binomial noise below)")
        if len(known) < len(labels):
            why.append("some rows came from an earlier run (no weight hash recorded)")
        print("tie (identical accuracy on every task): " + "; ".join(labels) + " -- " + "; ".join(why))
    print("95 % binomial half-width at 200 images: "
          + ", ".join(f"{p:.2f} -> +-{_ci(p):.3f}" for p in (0.6, 0.8, 0.9)))


if __name__ == "__main__":
    main()
