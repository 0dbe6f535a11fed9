"""Roofline projection: formula, fusion, bands, memory, energy, and the profile.json assembly."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hackforge_edge.errors import ProfileError, UsageError
from hackforge_edge.profiling.hardware import list_profiles, load_profile
from hackforge_edge.profiling.project import Features, layer_features, predict_seconds, project
from hackforge_edge.profiling.static import analyze


def _w(name, shape):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    """conv-relu, depthwise conv-clip, residual add, pool, gemm: 10 nodes, 2 fusable epilogues."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Add", ["r2", "r1"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["logits"], transB=1),
    ]
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
                          [_w("w1", [16, 3, 3, 3]), _w("w2", [16, 1, 3, 3]), _w("wf", [10, 16]), lo, hi])
    path = tmp_path_factory.mktemp("proj") / "small.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


def test_predict_seconds_is_the_roofline_formula():
    feat = Features(flops=[1e9, 0.0, 2e8], bytes=[1e6, 4e8, 1e6], depthwise=[False, False, True],
                    compute=[True, False, True], n_kernels=3, n_fused=0)
    params = {"eta_c": 0.5, "eta_c_depthwise": 0.1, "eta_m": 0.5, "t_launch_us": 10.0, "t_host_ms": 1.0}
    peak, bw = 1e12, 1e11
    out = predict_seconds(feat, params, peak, bw)
    expect = (max(1e9 / (0.5 * peak), 1e6 / (0.5 * bw)) + max(0.0, 4e8 / (0.5 * bw))
              + max(2e8 / (0.1 * peak), 1e6 / (0.5 * bw)) + 3 * 10e-6 + 1e-3)
    assert out["total"] == pytest.approx(expect)
    assert out["compute_bound"] == pytest.approx(2e-3 + 2e-3) and out["memory_bound"] == pytest.approx(8e-3)


def test_epilogue_fusion_counts_kernels(small_cnn):
    s = analyze(small_cnn)
    cpu = layer_features(s, "ort-cpu")
    # conv1 writes r1 once even though r1 has two readers; Flatten is a view
    assert cpu.n_fused == 3          # Relu -> conv1, Clip -> depthwise conv, residual Add -> it
    assert cpu.n_kernels == len(s.layers) - cpu.n_fused - 1
    assert sum(cpu.depthwise) == 1


@pytest.mark.parametrize("name", list_profiles())
def test_projection_on_every_profile(small_cnn, name):
    s = analyze(small_cnn, batch=1)
    p = project(s, name)
    d = p.to_json()
    json.dumps(d, allow_nan=False)
    lat = d["latency_ms"]
    assert d["kind"] == "projected" and 0 < lat["low"] <= lat["value"] <= lat["high"]
    assert d["power_w"]["kind"] == "estimated" and d["energy_per_inference_j"]["kind"] == "estimated"
    assert d["energy_per_inference_j"]["value"] == pytest.approx(p.latency_s * p.power_w)
    assert d["memory_required_bytes"] == sum(d["memory_breakdown"].values())
    assert d["memory_capacity_bytes"] == load_profile(name).memory_bytes
    assert d["throughput_per_s"] == pytest.approx(1 / p.latency_s)
    assert "excludes host<->device copies" in d["latency_definition"]
    if not d["calibration"]["calibrated"]:
        assert d["calibration"]["band_high"] >= 2.0


def test_uncalibrated_projection_says_so(small_cnn, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_EDGE_CACHE", str(tmp_path))
    d = project(analyze(small_cnn), "jetson-xavier-nx").to_json()     # no published data: priors
    assert d["calibration"]["calibrated"] is False and "uncalibrated" in d["calibration"]["note"]
    assert d["latency_ms"]["high"] / d["latency_ms"]["value"] == pytest.approx(3.0)
    # nvidia-t4 ships efficiencies fitted to published results: its band is the fitted one
    t4 = project(analyze(small_cnn), "nvidia-t4").to_json()
    eff = load_profile("nvidia-t4").efficiency
    assert t4["calibration"]["calibrated"] is True and "published" in t4["calibration"]["note"]
    assert t4["latency_ms"]["high"] / t4["latency_ms"]["value"] == pytest.approx(eff.band[1])


def test_power_modes_and_precisions(small_cnn):
    s = analyze(small_cnn, batch=4)
    fast = project(s, "jetson-orin-nano-8gb", mode="25W-super", batch=4)
    slow = project(s, "jetson-orin-nano-8gb", mode="7W", batch=4)
    assert slow.latency_s > fast.latency_s and slow.power_w < fast.power_w
    fp16 = project(s, "nvidia-t4", precision="fp16", batch=4)
    fp32 = project(s, "nvidia-t4", batch=4)
    assert fp16.memory["weights_bytes"] == fp32.memory["weights_bytes"] // 2
    assert fp16.latency_s <= fp32.latency_s
    assert any("fp16" in w for w in fp16.warnings)
    with pytest.raises(ProfileError, match="int8"):
        project(s, "jetson-nano", precision="int8", batch=4)
    with pytest.raises(UsageError, match="batch"):
        project(s, "nvidia-t4", batch=1)
    with pytest.raises(ProfileError, match="unknown mode"):
        project(s, "nvidia-t4", mode="turbo", batch=4)


def test_profile_model_assembles_profile_json(small_cnn, monkeypatch, tmp_path):
    from hackforge_edge.profiling import profile_model
    from hackforge_edge.profiling.artifact import Profile

    monkeypatch.setenv("HF_EDGE_CACHE", str(tmp_path))
    out = profile_model(small_cnn, ["local", "nvidia-t4", "jetson-nano"], batch_sizes=(1, 2),
                        precisions=("fp32", "int8"), runs=2, warmup=1)
    assert isinstance(out, Profile)
    data = out.to_json()
    json.dumps(data, allow_nan=False)
    assert Profile.from_json(json.loads(json.dumps(data))) == out       # the file round-trips
    assert set(out.static) == {"1", "2"} and out.local is not None and out.local.kind == "measured"
    assert out.model.inputs[0].name == "x"
    keys = {(p.profile, p.precision, p.batch) for p in out.projections}
    assert ("nvidia-t4", "int8", 2) in keys and ("jetson-nano", "int8", 1) not in keys
    assert any(s.profile == "jetson-nano" and s.precision == "int8" for s in out.skipped)
    for p in out.projections:
        assert p.kind == "projected" and p.default_mode is True
    assert out.profiles["nvidia-t4"].sources
    with pytest.raises(ProfileError):
        profile_model(small_cnn, ["nope"], batch_sizes=(1,), measure_local=False)
