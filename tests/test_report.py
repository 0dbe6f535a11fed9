"""The report: three files, figures embedded as base64 PNG, every number labelled with its kind."""

import base64
import json
import re

import pytest

import bundle_fixtures as fx

from hackforge_edge.errors import BundleError
from hackforge_edge.feasibility.verdict import evaluate
from hackforge_edge.report.build import LEGEND, assemble, build_report, render_markdown
from hackforge_edge.feasibility.requirements import Requirements

GIB = 2**30
GRID = {"region": "FRA", "intensity_g_per_kwh": 56.0, "pue": 1.0, "basis": "lifecycle",
        "year": 2023, "source": "OWID/Ember"}


def _proj(profile, mode, lat, mem_cap, power):
    v, lo, hi = lat
    return {"profile": profile, "display_name": profile, "mode": mode, "engine": "ort-cpu",
            "precision": "fp32", "batch": 1, "kind": "projected",
            "method": "per-layer roofline + kernel launch + host overhead",
            "latency_ms": {"value": v, "low": lo, "high": hi}, "throughput_per_s": 1000.0 / v,
            "memory_required_bytes": 200 * 2**20, "memory_capacity_bytes": mem_cap,
            "power_w": {"value": power, "kind": "estimated", "method": "idle + util x (TDP - idle)"},
            "energy_per_inference_j": {"value": power * v / 1000, "low": power * lo / 1000,
                                       "high": power * hi / 1000, "kind": "estimated",
                                       "method": "latency x power"},
            "calibration": {"calibrated": False, "source": "prior", "band_low": 0.5, "band_high": 2.0}}


def make_bundle(tmp_path):
    """A bundle directory with hand-made profile/feasibility/metrics/carbon/validation files."""
    profile = {
        "schema_version": 1, "model": {"path": "model.onnx", "inputs": [], "outputs": []},
        "static": {"1": {"kind": "static", "method": "onnx-shape-inference", "batch": 1,
                         "totals": {"macs": 300e6, "flops": 600e6, "params": 3.5e6, "weight_bytes": 14e6,
                                    "bytes_moved": 50e6, "peak_activation_bytes": 5e6, "nodes": 100},
                         "uncosted_ops": {"Foo": 1}, "warnings": []}},
        "local": {"kind": "measured", "method": "onnxruntime-wallclock", "engine": "ort-cpu",
                  "providers": ["CPUExecutionProvider"], "onnxruntime_version": "1.x", "threads": 2,
                  "warmup": 1, "runs": 3, "device": {"cpu_model": "test cpu", "logical_cores": 2},
                  "batches": [{"batch": 1, "status": "ok", "kind": "measured", "method": "wall clock",
                               "latency_ms": {"p50": 20, "p95": 24, "p99": 25, "mean": 21, "min": 19, "std": 1},
                               "throughput_per_s": 47.6,
                               "energy_per_inference_j": {"value": 0.3, "kind": "estimated",
                                                          "method": "TDP x load", "avg_power_w": 15}}]},
        "projections": [_proj("nvidia-t4", "70W", (3, 2, 6), 16 * GIB, 40),
                         _proj("raspberry-pi-5", "default", (90, 60, 140), 8 * GIB, 8)],
        "skipped": [{"profile": "raspberry-pi-5", "mode": None, "precision": "int8", "batch": 1,
                     "reason": "not supported"}],
    }
    feas = evaluate(profile, Requirements(max_latency_ms=50, items_per_day=10000), GRID)
    d = tmp_path / "run"
    d.mkdir()
    (d / "profile.json").write_text(json.dumps(profile))
    (d / "feasibility.json").write_text(json.dumps(feas))
    # the training-side files as the pipeline writes them (real producers, typed models)
    fx.metrics(0.91, class_names=("normal", "abnormal")).write(d)
    fx.training_carbon(0.0005).write(d)
    fx.export_validation(1e-6).write(d)
    return d


@pytest.fixture()
def bundle(tmp_path):
    return make_bundle(tmp_path)


def test_writes_three_files_and_figures(bundle):
    rows = [{"bundle": "a", "strategy": "lora", "accuracy": 0.9, "energy_kwh": 0.01, "co2_kg": 0.001,
             "energy_kind": "estimated", "energy_method": "tdp",
             "provenance": {"accuracy": "measured (metrics.json)", "energy_kwh": "estimated (tdp)"},
             "vs_scratch": {"baseline": "s", "energy_pct": -50.0}}]
    paths = build_report(bundle, comparison_rows=rows)
    for key in ("json", "md", "html", "figure_latency", "figure_energy", "figure_memory"):
        assert paths[key].is_file(), key
    html = paths["html"].read_text()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "http://" not in html and "https://" not in html          # self-contained
    for kind in LEGEND:
        assert f"kind-{kind}" in html                                  # legend + badges
    assert "Strategy comparison" in html and "Confusion matrix" in html
    assert "Training carbon" in html and "max_abs_diff" in html
    md = paths["md"].read_text()
    assert "[P]" in md and "[E]" in md and "[M]" in md and "[S]" in md
    assert "figures/latency.png" in md
    rep = json.loads(paths["json"].read_text())
    assert rep["thresholds"]["marginal_margin"] == 0.1
    assert set(rep["legend"]) == {"measured", "estimated", "projected", "static"}


def test_every_numeric_cell_has_a_kind(bundle):
    profile = json.loads((bundle / "profile.json").read_text())
    feas = json.loads((bundle / "feasibility.json").read_text())
    rep = assemble(profile, feas)
    verdicts = rep["sections"][0]
    numeric = [c for row in verdicts["rows"] for c in row[5:] if c["text"] != "n/a"]
    assert numeric and all(c["kind"] in LEGEND for c in numeric)
    assert "Legend" in render_markdown(rep)


def test_missing_profile_says_run_profile_first(tmp_path):
    with pytest.raises(BundleError, match="hf-edge profile"):
        build_report(tmp_path)
