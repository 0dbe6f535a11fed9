"""Leave-one-model-out check of the ort-cpu latency model on this machine (acceptance 3).

Measures each reference model once (batch 1 and 4, random weights, exported to ONNX in the
cache dir), then for each model fits the `local` profile's efficiencies on the *other*
models and predicts the held-out one. Prints model, measured ms, predicted ms, error %, and
the median / worst absolute error at batch 1 (targets: <= 20 % / <= 40 %).

    .venv/bin/python benchmarks/calibration_loo.py [--runs 15] [--batch-sizes 1,4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="interleaved rounds (min is fitted)")
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--points", default=None,
                    help="JSON of measured points: written after measuring, read instead of "
                         "measuring when it exists (re-fit the same measurements)")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (1: robust to other load on a shared CPU)")
    args = ap.parse_args(argv)
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))

    from hackforge_edge.profiling.calibrate import (
        REFERENCE_MODELS,
        Point,
        export_reference,
        fit,
        measure_points,
        reference_seq_len,
    )
    from hackforge_edge.profiling.hardware import detect_local
    from hackforge_edge.profiling.project import cache_bytes_of, layer_features, predict_seconds
    from hackforge_edge.profiling.static import analyze

    profile = detect_local(threads=args.threads)
    t0 = time.perf_counter()
    if args.points and Path(args.points).is_file():
        points = []
        for row in json.loads(Path(args.points).read_text()):
            path = export_reference(row["model"])
            st = analyze(path, batch=row["batch"], seq_len=reference_seq_len(row["model"]))
            points.append(Point(row["model"], row["batch"], row["measured_s"], st))
        print(f"re-using {len(points)} measured points from {args.points}", file=sys.stderr)
    else:
        points = measure_points(REFERENCE_MODELS, batch_sizes=batch_sizes, runs=args.runs,
                                threads=args.threads,
                                progress=lambda m: print(f"  {m}", file=sys.stderr))
        print(f"measured {len(points)} points in {time.perf_counter() - t0:.0f} s on "
              f"{profile.display_name}; statistic: min over interleaved rounds, "
              f"{args.threads} thread(s)", file=sys.stderr)
        if args.points:
            Path(args.points).write_text(json.dumps(
                [{"model": p.model, "batch": p.batch, "measured_s": p.measured_s} for p in points]))

    rows = []
    for held in REFERENCE_MODELS:
        train = [p for p in points if p.model != held]
        cal = fit(train, profile)
        params, _, roofs = cal.params_for(profile)
        for p in (q for q in points if q.model == held):
            feat = layer_features(p.static, profile.engine, cache_bytes=cache_bytes_of(profile))
            pred = predict_seconds(feat, params,
                                   roofs["peak_fp32_flops"], roofs["bandwidth_bps"])["total"]
            rows.append((held, p.batch, p.measured_s * 1e3, pred * 1e3,
                         100.0 * (pred - p.measured_s) / p.measured_s))

    print(f"{'model':<16}{'batch':>6}{'measured ms':>14}{'predicted ms':>14}{'error %':>10}")
    for m, b, meas, pred, err in rows:
        print(f"{m:<16}{b:>6}{meas:>14.2f}{pred:>14.2f}{err:>+10.1f}")
    for b in batch_sizes:
        errs = [abs(r[4]) for r in rows if r[1] == b]
        print(f"batch {b}: median |error| {statistics.median(errs):.1f} % (target <= 20), "
              f"worst {max(errs):.1f} % (target <= 40)")
    full = fit(points, profile)
    print("fit on all models:", {k: round(v, 4) for k, v in full.params.items()},
          f"rms log residual {full.rms_log_residual:.3f}, band x{full.band[0]:.2f}..x{full.band[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
