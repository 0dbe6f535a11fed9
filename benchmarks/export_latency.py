"""Export latency benchmark: PyTorch eager vs onnxruntime, and folded-LoRA vs base, on this CPU.

For each torchvision model (random init, weights=None; nothing is downloaded) at 224x224:
  * export the base model with exporters.export_onnx (batch 2, dynamic batch);
  * add PEFT LoRA (rank 8, alpha 16) on every non-grouped Conv2d/Linear of the backbone via
    hackforge_edge.strategies.apply_strategy, give lora_B random values (PEFT initialises it to
    zero, which would make the merge a no-op), fold with exporters.fold_lora and export again;
  * time, at batch 1, PyTorch eager (torch.inference_mode), onnxruntime on the base export and
    onnxruntime on the folded export. The three are interleaved within each round (the order
    rotates between rounds, so none always runs right after another engine) so they
    share the same CPU contention; warm-up runs are excluded; the figure is the median.

All figures are `measured` on this machine with time.perf_counter (milliseconds). Threads are
pinned: torch.set_num_threads(T) and ORT intra_op_num_threads=T (inter_op 1), T = --threads.

    python benchmarks/export_latency.py --threads 1 --runs 30 --warmup 5 [--json out.json]
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


def bench_model(name: str, *, threads: int, runs: int, warmup: int, size: int, workdir: Path) -> dict:
    """One flat record for ``name``: latencies in ms (median), ratios, node counts, exporter."""
    import torch

    from hackforge_edge.export import export_onnx, fold_lora, validate_export
    from hackforge_edge.export.validate import interleaved_latency_ms, latency_summary, make_session
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.strategies.registry import apply_strategy

    record: dict = {"model": name, "image_size": size, "batch_size": 1, "threads": threads}
    base = create_model(name, 1000, "none", seed=0).eval()
    record["params_m"] = round(sum(p.numel() for p in base.parameters()) / 1e6, 2)
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))

    t0 = time.perf_counter()
    base_export = export_onnx(base, example, workdir / f"{name}.onnx")
    record["export_s"] = round(time.perf_counter() - t0, 1)
    record["exporter"] = base_export.exporter

    peft_model, _ = apply_strategy(create_model(name, 1000, "none", seed=0), "lora",
                                        lora_rank=8, lora_alpha=16)
    _randomise_lora_b(peft_model)
    record["lora_targets"] = (peft_model.hf_edge_meta.get("lora") or {}).get("targeted_modules")
    folded = fold_lora(peft_model)
    folded_export = export_onnx(folded, example, workdir / f"{name}.lora_folded.onnx")
    record["node_count_base"] = base_export.node_count
    record["node_count_folded"] = folded_export.node_count
    # the folded export must still compute the adapted model, not the base one
    check = validate_export(peft_model.eval(), folded_export.path, example[:1], atol=1e-3, rtol=1e-3)
    record["folded_vs_peft_max_abs_diff"] = check["outputs"]["logits"]["max_abs_diff"]

    torch.set_num_threads(threads)
    x1 = example[:1].contiguous()
    feed = {"input": x1.numpy()}
    s_base = make_session(base_export.path, threads=threads)
    s_fold = make_session(folded_export.path, threads=threads)

    class _Eager:  # same .run(None, feed) call shape as an ORT session, so rounds interleave
        def run(self, _outputs, _feed):
            with torch.inference_mode():
                return base(x1)

    times = interleaved_latency_ms([_Eager(), s_base, s_fold], feed, runs, warmup)
    eager, ort_base, ort_fold = (latency_summary(t) for t in times)
    record.update({
        "torch_eager_ms": eager["median_ms"],
        "ort_ms": ort_base["median_ms"],
        "ort_lora_folded_ms": ort_fold["median_ms"],
        "eager_over_ort": round(eager["median_ms"] / ort_base["median_ms"], 2),
        "folded_over_base": round(ort_fold["median_ms"] / ort_base["median_ms"], 3),
        "torch_eager_p90_ms": eager["p90_ms"],
        "ort_p90_ms": ort_base["p90_ms"],
        "ort_lora_folded_p90_ms": ort_fold["p90_ms"],
        "runs": runs,
        "warmup_runs": warmup,
        "method": "measured: time.perf_counter, batch 1, warm-up excluded, median; eager / ORT "
                  "base / ORT folded interleaved per round, order rotated between rounds",
    })
    return record


def _table(records: list[dict]) -> str:
    head = ("model", "params M", "torch eager ms", "ORT ms", "eager/ORT", "ORT LoRA-folded ms",
            "folded/base", "nodes base/folded", "exporter")
    rows = []
    for r in records:
        if "error" in r:
            rows.append((r["model"], "-", "-", "-", "-", "-", "-", "-", f"error: {r['error']}"))
            continue
        rows.append((
            r["model"], f"{r['params_m']:.2f}", f"{r['torch_eager_ms']:.2f}", f"{r['ort_ms']:.2f}",
            f"{r['eager_over_ort']:.2f}x", f"{r['ort_lora_folded_ms']:.2f}",
            f"{r['folded_over_base']:.3f}", f"{r['node_count_base']}/{r['node_count_folded']}",
            r["exporter"],
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated registry names (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads and ORT intra_op_num_threads (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per engine (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the flat records to this JSON file")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    records = []
    with tempfile.TemporaryDirectory(prefix="hf-edge-bench-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            print(f"[{name}] exporting base and folded-LoRA, then timing ...", file=sys.stderr, flush=True)
            try:
                records.append(bench_model(name, threads=args.threads, runs=args.runs,
                                           warmup=args.warmup, size=args.size, workdir=Path(tmp)))
            except Exception as err:  # noqa: BLE001 - one model failing must not lose the others
                records.append({"model": name, "error": f"{type(err).__name__}: {err}"[:200]})

    print(f"# export_latency: {_cpu_name()}, {args.threads} thread(s), batch 1, "
          f"{args.size}x{args.size}, random init (weights=None)")
    print(f"# torch {torch.__version__}, onnxruntime {onnxruntime.__version__} CPUExecutionProvider "
          f"(graph optimisation ALL, in memory)")
    print(f"# measured: time.perf_counter per call, {args.warmup} warm-up runs excluded, median of "
          f"{args.runs} runs; eager, ORT base and ORT folded interleaved each round (order rotated)")
    print("# eager/ORT = torch eager median / ORT median; folded/base = ORT folded-LoRA median / "
          "ORT base median (LoRA rank 8, alpha 16, merged with PEFT merge_and_unload)")
    print(_table(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
