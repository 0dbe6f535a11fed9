"""FP32 vs INT8 (static QDQ, S8S8 and the engine-aware format) on this CPU for torchvision models.

For each model: export FP32 ONNX (random weights, no download), build INT8 variants with
``hackforge_edge.export.make_int8`` (MinMax calibration on synthetic images), then measure batch-1
latency with onnxruntime (interleaved runs, median) and the top-1 agreement with FP32 on held-out
synthetic images (random weights have no task accuracy: agreement with the FP32 model is the
accuracy check, gated at ``--max-drop`` points). Prints one table and the load average.

    flock /tmp/hf-bench.lock python benchmarks/int8_vs_fp32.py --models resnet50 --runs 30

Numbers are measured on this machine only; run it under the lock, and read them with the load
average printed next to them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def export(name: str, path: Path, size: int) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(2, 3, size, size)
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=32, help="calibration images")
    ap.add_argument("--eval", type=int, default=64, help="held-out images for the agreement check")
    ap.add_argument("--max-drop", type=float, default=1.0, help="points of top-1 agreement lost allowed")
    args = ap.parse_args(argv)

    from hackforge_edge.export import make_int8
    from hackforge_edge.export.validate import latency_summary, make_session
    from hackforge_edge.runtime.timing import time_interleaved

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hf-int8-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            d = Path(tmp) / name
            d.mkdir()
            fp32 = d / "model.onnx"
            export(name, fp32, args.size)
            calib = rng.standard_normal((args.calib, 3, args.size, args.size)).astype(np.float32)
            held = rng.standard_normal((args.eval, 3, args.size, args.size)).astype(np.float32)
            batches = [calib[i:i + 8] for i in range(0, len(calib), 8)]
            variants = {}
            for label, engine in (("S8S8 (tensorrt-style)", "tensorrt"), ("engine-aware", None)):
                t0 = time.perf_counter()
                info = make_int8(fp32, d / f"int8-{engine or 'local'}.onnx", batches, engine=engine)
                variants[label] = (info, time.perf_counter() - t0)
            sessions = [make_session(fp32, threads=args.threads)] + [
                make_session(info["path"], threads=args.threads) for info, _ in variants.values()]
            ref = np.concatenate([sessions[0].run(None, {"input": held[i:i + 16]})[0]
                                  for i in range(0, len(held), 16)]).argmax(1)
            one = {"input": held[:1]}
            # spin-wait is off in these sessions (validate.make_session): interleaving is fair
            times = time_interleaved([lambda x=x, o=one: x.run(None, o) for x in sessions], warmup=3, runs=args.runs)
            fp32_ms = latency_summary(times[0])["median_ms"]
            rows.append((name, "FP32", "-", fp32_ms, 1.0, 100.0, "reference"))
            for (label, (info, _build_s)), sess, t in zip(variants.items(), sessions[1:], times[1:]):
                pred = np.concatenate([sess.run(None, {"input": held[i:i + 16]})[0]
                                       for i in range(0, len(held), 16)]).argmax(1)
                agree = 100.0 * float((pred == ref).mean())
                ms = latency_summary(t)["median_ms"]
                s = info["settings"]
                fmt = f"{s['activation_type']}/{s['weight_type']} {s['engine']}"
                gate = "kept" if 100.0 - agree <= args.max_drop else f"REJECTED (> {args.max_drop:g} pt)"
                rows.append((name, f"INT8 {label}", fmt, ms, fp32_ms / ms, agree, gate))
            print(f"{name}: built in " + ", ".join(f"{k} {b:.0f} s" for k, (_, b) in variants.items()),
                  file=sys.stderr)

    print(f"\nbatch 1, {args.size}x{args.size}, {args.threads} threads, median of {args.runs} interleaved runs; "
          f"agreement on {args.eval} synthetic images (random weights)")
    print(f"{'model':14} {'variant':28} {'format':28} {'median ms':>10} {'x FP32':>7} {'top-1 agree %':>14}  gate")
    for name, var, fmt, ms, speed, agree, gate in rows:
        print(f"{name:14} {var:28} {fmt:28} {ms:10.2f} {speed:7.2f} {agree:14.1f}  {gate}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cpu count {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
