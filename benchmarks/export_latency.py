"""Export latency benchmark: PyTorch eager vs onnxruntime, and folded-LoRA vs base, on this CPU.

For each torchvision model (random init, weights=None; nothing is downloaded) at 224x224:
  * export the base model with hackforge_edge.export.export_onnx (batch 2, dynamic batch);
  * add PEFT LoRA (rank 8, alpha 16) on every non-grouped Conv2d/Linear of the backbone via
    hackforge_edge.strategies.apply_strategy, give lora_B random values (PEFT initialises it to
    zero, which would make the merge a no-op), fold with fold_lora and export again;
  * time, at batch 1 and at each --threads value, PyTorch eager (torch.inference_mode),
    onnxruntime on the base export and onnxruntime on the folded export.

Method (``--method blocks``, the default): each engine is timed in its own block -- ``--warmup``
untimed calls, then ``--runs`` timed calls -- and the blocks rotate over ``--rounds`` rounds;
the figure is the median of all timed calls (rounds x runs per engine). onnxruntime sessions
have intra-op spin-wait off (``session.intra_op.allow_spinning = 0``). Interleaving single
calls (``--method interleaved``, the earlier method, ORT spinning on) charges one engine's
still-spinning thread pool (ORT's, or torch's OpenMP pool) to the next engine's call; at
2 threads on a 2-core machine that gave folded/base 1.42 (resnet50) and 1.90 (mobilenet_v2)
for two graphs of the same cost. It is kept only to show that effect.

All figures are `measured` on this machine with time.perf_counter (milliseconds). Threads are
pinned: torch.set_num_threads(T) and ORT intra_op_num_threads=T (inter_op 1). The exports are
made once and timed at every T given.

    python benchmarks/export_latency.py --threads 1,2 [--rounds 5 --runs 10 --warmup 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_b0", "resnet50")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _randomise_lora_b(model, seed: int = 0) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)


def prepare_model(name: str, *, size: int, workdir: Path) -> tuple[dict, dict]:
    """Export base and folded-LoRA ONNX for ``name``: (record, what timing needs).

    The exports and their record are kept in ``workdir``; a later run with the same workdir
    reuses them (the eager model is rebuilt: same seed, same weights).
    """
    import torch

    from hackforge_edge.export import export_onnx, fold_lora, validate_export
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.strategies.registry import apply_strategy

    base = create_model(name, 1000, "none", seed=0).eval()
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    paths = {"base": workdir / f"{name}_{size}.onnx", "folded": workdir / f"{name}_{size}.lora_folded.onnx"}
    saved = workdir / f"{name}_{size}.record.json"
    prepared = {"eager": base, "x1": example[:1].contiguous(), **paths}
    if saved.is_file() and all(p.is_file() for p in paths.values()):
        return json.loads(saved.read_text()), prepared

    record: dict = {"model": name, "image_size": size, "batch_size": 1}
    record["params_m"] = round(sum(p.numel() for p in base.parameters()) / 1e6, 2)
    t0 = time.perf_counter()
    base_export = export_onnx(base, example, paths["base"])
    record["export_s"] = round(time.perf_counter() - t0, 1)
    record["exporter"] = base_export.exporter

    peft_model, _ = apply_strategy(create_model(name, 1000, "none", seed=0), "lora",
                                   lora_rank=8, lora_alpha=16)
    _randomise_lora_b(peft_model)
    record["lora_targets"] = (peft_model.hf_edge_meta.get("lora") or {}).get("targeted_modules")
    folded = fold_lora(peft_model)
    folded_export = export_onnx(folded, example, paths["folded"])
    record["node_count_base"] = base_export.node_count
    record["node_count_folded"] = folded_export.node_count
    # the folded export must still compute the adapted model, not the base one
    check = validate_export(peft_model.eval(), folded_export.path, example[:1], atol=1e-3, rtol=1e-3)
    record["folded_vs_peft_max_abs_diff"] = check["outputs"]["logits"]["max_abs_diff"]
    saved.write_text(json.dumps(record, indent=2) + "\n")
    return record, prepared


def time_engines(prepared: dict, *, threads: int, method: str, rounds: int, runs: int,
                 warmup: int) -> dict:
    """Median latencies (ms) and ratios of eager / ORT base / ORT folded at ``threads``."""
    import torch

    from hackforge_edge.runtime.session import make_session
    from hackforge_edge.runtime.timing import time_in_blocks, time_interleaved

    torch.set_num_threads(threads)
    eager, x1 = prepared["eager"], prepared["x1"]
    feed = {"input": x1.numpy()}
    spin = False if method == "blocks" else None        # interleaved: ORT's default (spinning)
    s_base, s_fold = (make_session(prepared[k], threads=threads, inter_op_threads=1,
                                   allow_spinning=spin) for k in ("base", "folded"))

    def run_eager():
        with torch.inference_mode():
            return eager(x1)

    fns = [run_eager, lambda: s_base.run(None, feed), lambda: s_fold.run(None, feed)]
    if method == "blocks":
        timings = time_in_blocks(fns, rounds=rounds, runs=runs, warmup=warmup)
        per_round = [sorted(t.times_ms[r * runs:(r + 1) * runs]) for t in timings for r in range(rounds)]
        # paired by round: a folded block and a base block of the same round saw the same
        # background load, so the ratio of their medians cancels slow drift
        ratios = [_median(per_round[2 * rounds + r]) / _median(per_round[rounds + r]) for r in range(rounds)]
        eager_ratios = [_median(per_round[r]) / _median(per_round[rounds + r]) for r in range(rounds)]
    else:
        timings = time_interleaved(fns, warmup=warmup, runs=rounds * runs)
        ratios = eager_ratios = []
    t_eager, t_base, t_fold = timings
    pooled_fold, pooled_eager = t_fold.p50_ms / t_base.p50_ms, t_eager.p50_ms / t_base.p50_ms
    return {
        "threads": threads,
        "torch_eager_ms": round(t_eager.p50_ms, 3),
        "ort_ms": round(t_base.p50_ms, 3),
        "ort_lora_folded_ms": round(t_fold.p50_ms, 3),
        # blocks: median over rounds of the per-round ratio; interleaved: ratio of the medians
        "eager_over_ort": round(_median(eager_ratios) if eager_ratios else pooled_eager, 2),
        "folded_over_base": round(_median(ratios) if ratios else pooled_fold, 3),
        "folded_over_base_pooled": round(pooled_fold, 3),
        "folded_over_base_per_round": [round(x, 3) for x in ratios],
        "torch_eager_p90_ms": round(t_eager.percentile_ms(90), 3),
        "ort_p90_ms": round(t_base.percentile_ms(90), 3),
        "ort_lora_folded_p90_ms": round(t_fold.percentile_ms(90), 3),
        "timed_calls_per_engine": t_base.runs,
        "method": (f"measured: time.perf_counter, batch 1, median of all timed calls; {method}: "
                   + (f"{rounds} rounds x (warm-up {warmup} + {runs} timed) per engine block, "
                      "block order rotated, ORT spin-wait off" if method == "blocks" else
                      f"warm-up {warmup}, then single calls interleaved (order rotated), ORT spin-wait on")),
    }


def _median(xs: list[float]) -> float:
    from hackforge_edge.runtime.timing import percentile

    return percentile(xs, 50)


def _table(records: list[dict]) -> str:
    head = ("model", "timing", "threads", "params M", "torch eager ms", "ORT ms", "eager/ORT", "ORT LoRA-folded ms",
            "folded/base", "per-round folded/base", "nodes base/folded", "exporter")
    rows = []
    for r in records:
        if "error" in r:
            rows.append((r["model"], "-", "-", *["-"] * 8, f"error: {r['error']}"))
            continue
        per_round = r["folded_over_base_per_round"]
        rows.append((
            r["model"], r["timing"], str(r["threads"]), f"{r['params_m']:.2f}", f"{r['torch_eager_ms']:.2f}",
            f"{r['ort_ms']:.2f}", f"{r['eager_over_ort']:.2f}x", f"{r['ort_lora_folded_ms']:.2f}",
            f"{r['folded_over_base']:.3f}",
            f"{min(per_round):.2f}-{max(per_round):.2f}" if per_round else "-",
            f"{r['node_count_base']}/{r['node_count_folded']}", r["exporter"],
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated registry names (default: %(default)s)")
    parser.add_argument("--threads", default="1",
                        help="comma list: torch.set_num_threads and ORT intra_op_num_threads, each "
                             "timed on the same exports (default: %(default)s)")
    parser.add_argument("--method", default="blocks",
                        help="timing method(s), comma list of blocks, interleaved (default: %(default)s; "
                             "see the module docstring)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of engine blocks (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=10,
                        help="timed calls per engine block (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed calls at the start of each block (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the flat records to this JSON file")
    parser.add_argument("--workdir", type=Path,
                        help="keep the exports here and reuse them on the next run (default: a temp dir)")
    parser.add_argument("--export-only", action="store_true",
                        help="only make the exports in --workdir (untimed preparation), then stop")
    args = parser.parse_args(argv)
    if args.export_only and not args.workdir:
        parser.error("--export-only needs --workdir")
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if not methods or set(methods) - {"blocks", "interleaved"}:
        parser.error(f"--method: expected blocks and/or interleaved, got {args.method!r}")

    import onnxruntime
    import torch

    records = []
    with tempfile.TemporaryDirectory(prefix="hf-edge-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            print(f"[{name}] exporting base and folded-LoRA (or reusing {workdir}) ...", file=sys.stderr,
                  flush=True)
            try:
                record, prepared = prepare_model(name, size=args.size, workdir=workdir)
                if args.export_only:
                    continue
                for method in methods:
                    for t in thread_counts:
                        print(f"[{name}] timing at {t} thread(s), {method} ...", file=sys.stderr, flush=True)
                        records.append({**record, "timing": method,
                                        **time_engines(prepared, threads=t, method=method, rounds=args.rounds,
                                                       runs=args.runs, warmup=args.warmup)})
            except Exception as err:  # noqa: BLE001 - one model failing must not lose the others
                records.append({"model": name, "error": f"{type(err).__name__}: {err}"[:200]})

    if args.export_only:
        return 1 if records else 0
    print(f"# export_latency: {_cpu_name()}, threads {args.threads}, batch 1, "
          f"{args.size}x{args.size}, random init (weights=None)")
    print(f"# torch {torch.__version__}, onnxruntime {onnxruntime.__version__} CPUExecutionProvider "
          f"(graph optimisation ALL, in memory)")
    if "blocks" in methods:
        print(f"# measured (blocks): time.perf_counter per call; per engine {args.rounds} blocks of {args.warmup} "
              f"warm-up + {args.runs} timed calls, block order rotated each round, ORT spin-wait off; "
              "median of all timed calls")
    if "interleaved" in methods:
        print(f"# measured (interleaved): time.perf_counter per call; {args.warmup} warm-up calls, then "
              f"{args.rounds * args.runs} single calls per engine interleaved (order rotated), ORT spin-wait "
              "on (the earlier method, kept to show its bias)")
    print("# ms columns: median of all timed calls. eager/ORT, folded/base: for blocks the median over "
          "rounds of the ratio of that round's block medians (paired, so background drift cancels), "
          "for interleaved the ratio of the medians; per-round = range of the per-round ratios. "
          "LoRA rank 8, alpha 16, merged with PEFT merge_and_unload")
    print(_table(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
