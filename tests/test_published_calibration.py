"""Published-results calibration: sourced data, no ResNet-50/BERT in the fit, the fit beats the
priors on real published points, and calibrated profiles say what they were calibrated on."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from test_calibrate import _model as conv_silu_model  # the same Conv + SiLU graph builder

from hackforge_edge.errors import ProfileError
from hackforge_edge.profiling import published as P
from hackforge_edge.profiling.calibrate import Point, fit
from hackforge_edge.profiling.hardware import list_profiles, load_profile
from hackforge_edge.profiling.project import cache_bytes_of, layer_features, predict_seconds, project
from hackforge_edge.profiling.static import analyze

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published():
    return P.load_published()


@pytest.fixture(scope="module")
def features():
    return P.load_features()


def test_every_record_is_sourced_and_has_features(published, features):
    profiles = set(list_profiles())
    for r in published.records:
        assert r.source_url.startswith("https://") and len(r.excerpt) >= 10
        assert r.retrieved and r.published and r.source_text and r.engine and r.power_mode
        assert r.profile in profiles, r.profile
        assert r.model in features, r.model
        feat = features[r.model]
        assert feat["built_by"] and feat["batch"] == r.batch
        if not r.precision_stated:
            assert r.note and "precision not stated" in r.note      # the assumption is explained
        # the published figure is one of the numbers of the verbatim row
        fig = r.latency_ms if r.latency_ms is not None else r.throughput_per_s
        assert fig in [float(t) for t in re.findall(r"\d+(?:\.\d+)?", r.excerpt)], (r.model, r.excerpt)


def test_fitting_set_refuses_resnet50_and_bert(published, tmp_path):
    assert not [r.model for r in published.records if P.EXCLUDED_FROM_FIT.search(r.model)]
    data = yaml.safe_load(
        (REPO / "hackforge_edge/profiling/published_results/measurements.yaml").read_text(encoding="utf-8"))
    for bad in ("resnet50", "bert-base-seq128"):
        data["records"][0] = {**data["records"][0], "model": bad}
        f = tmp_path / "m.yaml"
        f.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        with pytest.raises(ProfileError, match="ResNet-50/BERT"):
            P.load_published(f)


def test_check_set_lives_outside_the_package():
    check = P.load_check_set(REPO / P.CHECK_FILE)
    assert check.records and all(P.EXCLUDED_FROM_FIT.search(r.model) for r in check.records)
    assert not P.CHECK_FILE.startswith("hackforge_edge")


@pytest.fixture(scope="module")
def tiny_statics(tmp_path_factory):
    d = tmp_path_factory.mktemp("pub")
    specs = {"dense16": (16, False, 2, 32), "dense96": (96, False, 2, 64), "dw64": (64, True, 3, 64),
             "tiny4": (2, False, 1, 4), "tiny4x12": (2, False, 12, 4)}
    return {(name, b): analyze(conv_silu_model(d / f"{name}.onnx", *spec), batch=b)
            for name, spec in specs.items() for b in (1, 8)}


def test_stored_features_equal_layer_features(tiny_statics):
    st = tiny_statics[("dw64", 8)]
    rec = json.loads(json.dumps(P.features_record(st, input_size=64, seq_len=None, built_by="test")))
    for engine in P.ENGINES:
        for precision in ("fp32", "fp16", "int8"):
            for cache in (None, 64 * 1024):
                a = P.features_for(rec, engine, precision, cache)
                b = layer_features(st, engine, precision, cache)
                assert a.n_kernels == b.n_kernels and a.flops == pytest.approx(b.flops)
                assert a.bytes == pytest.approx(b.bytes, abs=1.0) and a.resident == b.resident
                assert a.depthwise == b.depthwise and a.compute == b.compute


def test_fit_recovers_efficiencies_of_a_tiny_model_at_fp16(tiny_statics):
    """Latencies made with known efficiencies from real static features at fp16 (T4 fp16 peak):
    the fit from the priors reproduces held-out points far better than the priors do."""
    profile = P.with_priors(load_profile("nvidia-t4"))
    true = {"eta_c": 0.3, "eta_c_depthwise": 0.05, "eta_m": 0.35, "t_launch_us": 7.0,
            "t_host_ms": 0.3, "cache_speedup": 3.0}
    pts = []
    for (name, b), st in tiny_statics.items():
        rec = P.features_record(st, input_size=0, seq_len=None, built_by="test")
        feat = P.features_for(rec, profile.engine, "fp16", cache_bytes_of(profile))
        t = predict_seconds(feat, true, profile.peak_flops("fp16"), profile.bandwidth_bps())["total"]
        pts.append(Point(f"{name}@{b}", b, t, None, precision="fp16", features=feat))
    held = [p for p in pts if p.model in ("dense96@1", "dw64@1", "tiny4x12@8")]
    assert len(held) == 3
    cal = fit([p for p in pts if p not in held], profile)
    prior = P.prior_params(profile)
    for p in held:
        fitted_err = abs(P.predict_point(p, cal.params, profile) / p.measured_s - 1)
        prior_err = abs(P.predict_point(p, prior, profile) / p.measured_s - 1)
        assert fitted_err < 0.10 and fitted_err < prior_err / 2, (p.model, fitted_err, prior_err)


def test_fit_on_published_points_beats_the_priors(published, features):
    """Jetson Orin Nano, published TensorRT FP16 rows of three YOLO11 sizes: the fit projects the
    two held-out sizes closer to their published latency than the priors do."""
    profile = P.with_priors(load_profile("jetson-orin-nano-8gb"))
    recs = [r for r in published.records if r.profile == profile.name and r.precision == "fp16"]
    pts = P.points_for(profile, recs, features)
    train = [p for p in pts if p.model in ("yolo11n", "yolo11m", "yolo11x")]
    held = [p for p in pts if p.model in ("yolo11s", "yolo11l")]
    assert len(train) == 3 and len(held) == 2
    cal, fitted = P.fit_published(train, profile)
    prior = P.prior_params(profile)
    for p in held:
        fitted_err = abs(math.log(P.predict_point(p, cal.params, fitted) / p.measured_s))
        prior_err = abs(math.log(P.predict_point(p, prior, profile) / p.measured_s))
        assert fitted_err < prior_err, (p.model, fitted_err, prior_err)


def test_calibrated_profiles_say_what_they_were_calibrated_on(published):
    calibrated = 0
    for name in list_profiles():
        if name == "local":
            continue
        eff = load_profile(name).efficiency
        mine = [r for r in published.records if r.profile == name]
        if not eff.calibrated:
            assert eff.calibrated_on is None and ("prior" in eff.source or "not fitted" in eff.source)
            continue
        calibrated += 1
        on = eff.calibrated_on
        assert on is not None, f"{name} says calibrated but not on what"
        assert set(on.models) == {r.model for r in mine} and on.n_points == len(mine)
        assert set(on.sources) == {r.source_url for r in mine}
        assert set(on.precisions) == {r.precision for r in mine}
        assert "published" in eff.source and on.date in eff.source
        assert eff.band[0] < 1 < eff.band[1]
        assert on.loo_median_abs_error_pct <= on.loo_worst_abs_error_pct
    assert calibrated >= 1


def test_fp32_compute_scale_changes_fp32_projections_only(tiny_statics):
    st = tiny_statics[("dense96", 8)]
    base = P.with_fp32_scale(load_profile("jetson-orin-nx-16gb"), 1.0)
    scaled = P.with_fp32_scale(base, 3.0)
    assert project(st, scaled, precision="fp16").latency_s == pytest.approx(
        project(st, base, precision="fp16").latency_s)
    a = project(st, base, precision="fp32").breakdown_s
    b = project(st, scaled, precision="fp32").breakdown_s
    assert b["compute_bound"] + b["memory_bound"] < a["compute_bound"] + a["memory_bound"]


def test_a_device_fit_projects_with_its_own_fp32_scale_once(tiny_statics):
    """A measured fit on a profile with a fitted fp32 compute scale (jetson-orin-nx-16gb) projects
    exactly what the fitted model says, at fp32 and fp16 (the scale is applied once, to fp32)."""
    from hackforge_edge.profiling.project import compute_peak

    profile = load_profile("jetson-orin-nx-16gb")
    pts = [Point(f"{n}@{b}", b, 1e-3 * (1 + i), st, precision=prec)
           for i, ((n, b), st) in enumerate(sorted(tiny_statics.items())) for prec in ("fp32", "fp16")]
    cal = fit(pts, profile)
    st = tiny_statics[("dense96", 8)]
    for prec in ("fp32", "fp16"):
        feat = layer_features(st, profile.engine, prec, cache_bytes_of(profile))
        want = predict_seconds(feat, cal.params, compute_peak(profile, prec), profile.bandwidth_bps())
        got = project(st, profile, precision=prec, calibration=cal)
        assert got.latency_s == pytest.approx(want["total"], rel=1e-9)
