"""Calibrate the shipped device profiles from published latencies; leave-one-model-out per device.

Reads hackforge_edge/profiling/published_results/measurements.yaml (published rows with source
URLs) and features.json (static features of the same models built here), and for each profile
with data:

- the leave-one-model-out table: model, precision, published ms, projected ms with the fit on
  the other models, error %, and the projection with the profile's priors (before calibration);
- median / worst absolute error of both;
- the check of ResNet-50 / BERT projections (fitted profile and priors) against the published
  values in benchmarks/published_check.yaml, which are never fitted on.

    python benchmarks/published_calibration.py            # print the tables
    python benchmarks/published_calibration.py --write    # also write the fits into the profile YAMLs

Needs scipy (train extra); no torch, no network. Features are rebuilt (optional) with
benchmarks/published_features.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hackforge_edge.profiling.calibrate import Point  # noqa: E402
from hackforge_edge.profiling.hardware import list_profiles, load_profile  # noqa: E402
from hackforge_edge.profiling.project import cache_bytes_of  # noqa: E402
from hackforge_edge.profiling.published import (  # noqa: E402
    CHECK_FEATURES_FILE,
    CHECK_FILE,
    MIN_MODELS,
    calibrate_profile,
    efficiency_block,
    features_for,
    load_check_set,
    load_features,
    load_published,
    points_for,
    predict_point,
    prior_params,
    with_fp32_scale,
    with_priors,
)

PROFILE_DIR = REPO / "hackforge_edge" / "profiling" / "profiles"


def _table(rows, header=True):
    if header:
        print(f"  {'model':<17}{'prec':<6}{'published ms':>13}{'LOO proj ms':>13}{'error %':>9}"
              f"{'prior ms':>11}{'prior err %':>12}")
    for r in rows:
        print(f"  {r.model:<17}{r.precision:<6}{r.published_ms:>13.3f}{r.projected_ms:>13.3f}"
              f"{r.error_pct:>+9.1f}{r.prior_ms:>11.3f}{r.prior_error_pct:>+12.1f}")


def _prior_only(profile, points):
    prior, profile = prior_params(profile), with_fp32_scale(profile, 1.0)
    print(f"  {'model':<17}{'prec':<6}{'published ms':>13}{'prior ms':>11}{'prior err %':>12}")
    errs = []
    for p in points:
        pred = predict_point(p, prior, profile) * 1e3
        err = 100 * (pred / (p.measured_s * 1e3) - 1)
        errs.append(abs(err))
        print(f"  {p.model:<17}{p.precision:<6}{p.measured_s * 1e3:>13.3f}{pred:>11.3f}{err:>+12.1f}")
    print(f"  priors: median |error| {statistics.median(errs):.1f} %, worst {max(errs):.1f} %")


def write_efficiency(path: Path, block: dict) -> None:
    """Replace the top-level ``efficiency:`` mapping of a profile YAML, keeping the rest as is."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.startswith("efficiency:"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].strip() and not lines[i].startswith((" ", "#"))), len(lines))
    new = yaml.safe_dump({"efficiency": block}, sort_keys=False, allow_unicode=True, width=100)
    path.write_text("".join(lines[:start]) + new + "".join(lines[end:]), encoding="utf-8")
    load_profile(str(path))                          # still a valid profile


def check(profile, cal, check_set, check_feats):
    rows = [r for r in check_set.records if r.profile == profile.name]
    if not rows:
        return
    print(f"  check (never fitted): ResNet-50 / BERT vs {CHECK_FILE}")
    print(f"  {'model':<17}{'prec':<6}{'published ms':>13}{'fitted ms':>11}{'error %':>9}{'prior ms':>11}"
          f"{'prior err %':>12}")
    prior, prior_profile = prior_params(profile), with_fp32_scale(profile, 1.0)
    fitted = with_fp32_scale(profile, cal.fp32_compute_scale)
    for r in rows:
        if r.model not in check_feats:
            print(f"  {r.model:<17}{r.precision:<6} no features (run benchmarks/published_features.py --check)")
            continue
        feat = features_for(check_feats[r.model], profile.engine, r.precision, cache_bytes_of(profile))
        p = Point(r.model, r.batch, r.latency_s, None, r.profile_mode, precision=r.precision, features=feat)
        fit_ms = predict_point(p, cal.params, fitted) * 1e3
        pri_ms = predict_point(p, prior, prior_profile) * 1e3
        pub = r.latency_s * 1e3
        print(f"  {r.model:<17}{r.precision:<6}{pub:>13.3f}{fit_ms:>11.3f}{100 * (fit_ms / pub - 1):>+9.1f}"
              f"{pri_ms:>11.3f}{100 * (pri_ms / pub - 1):>+12.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write fitted efficiencies into the profile YAMLs")
    ap.add_argument("--date", default=dt.date.today().isoformat(), help="date stamped on written fits")
    args = ap.parse_args(argv)

    published = load_published()
    feats = load_features()
    check_path = REPO / CHECK_FILE
    check_set = load_check_set(check_path) if check_path.is_file() else None
    check_feats = load_features(REPO / CHECK_FEATURES_FILE) if (REPO / CHECK_FEATURES_FILE).is_file() else {}
    print(f"published records: {len(published.records)} (fitting set), check records: "
          f"{len(check_set.records) if check_set else 0}; load average {os.getloadavg()}")
    uncal = []
    summary = []
    for name in list_profiles():
        if name == "local":
            continue
        profile = load_profile(name)
        points = points_for(profile, published.records, feats)
        if not points:
            uncal.append(f"{name} (no published data found)")
            continue
        # the profile's priors as shipped before any published calibration (published.PRIORS)
        profile = with_priors(profile)
        n_models = len(dict.fromkeys(p.model for p in points))
        print(f"\n== {name} ({profile.engine}, {len(points)} points, {n_models} models)")
        cal = calibrate_profile(profile, published.records, feats)
        if cal is None:
            print(f"  not calibrated: {n_models} model(s) < {MIN_MODELS}, no leave-one-model-out possible; "
                  "priors kept")
            _prior_only(profile, points)
            uncal.append(f"{name} (only {n_models} published model(s))")
            continue
        _table(cal.loo)
        med, worst = cal.loo_summary
        pmed, pworst = cal.prior_summary
        print(f"  leave-one-model-out: median |error| {med:.1f} %, worst {worst:.1f} %   "
              f"(priors: median {pmed:.1f} %, worst {pworst:.1f} %)")
        print("  fit on all: " + ", ".join(f"{k} {v:.4g}" for k, v in cal.params.items())
              + f", fp32_compute_scale {cal.fp32_compute_scale:.3g}"
              + (f"; families {cal.families} (one family: band widened x2 each side)" if cal.band_widened
                 else f"; families {cal.families}")
              + f"; band x{cal.band[0]:.2f}..x{cal.band[1]:.2f}")
        if check_set:
            check(profile, cal, check_set, check_feats)
        summary.append((name, len(points), n_models, med, worst, pmed, pworst))
        if args.write:
            write_efficiency(PROFILE_DIR / f"{name}.yaml", efficiency_block(profile, cal, date=args.date))
            print(f"  wrote profiles/{name}.yaml")
    print("\nsummary (leave-one-model-out |error| %, fitted vs priors)")
    print(f"  {'profile':<24}{'points':>7}{'models':>7}{'median':>8}{'worst':>8}{'prior med':>10}{'prior worst':>12}")
    for s in summary:
        print(f"  {s[0]:<24}{s[1]:>7}{s[2]:>7}{s[3]:>8.1f}{s[4]:>8.1f}{s[5]:>10.1f}{s[6]:>12.1f}")
    print("uncalibrated (priors kept): " + "; ".join(uncal))
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
