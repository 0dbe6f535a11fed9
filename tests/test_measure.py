"""Local measurement with onnxruntime on a tiny hand-built model (no torch, no timing asserts)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from hackforge_edge.errors import HFEdgeError, ModelFileError, UsageError
from hackforge_edge.profiling.measure import measure


def _tiny_cnn(path, batch="N"):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y"], ["z"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


@pytest.fixture()
def tiny(tmp_path):
    return _tiny_cnn(tmp_path / "tiny.onnx")


def test_measure_reports_labelled_figures(tiny):
    m = measure(tiny, batch_sizes=(1, 2), warmup=1, runs=3)
    assert [b.batch for b in m.batches] == [1, 2]
    for b in m.batches:
        lat = b.latency_ms
        assert b.status == "ok" and b.runs == 3
        assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"]
        assert b.throughput_per_s > 0
        e = b.energy_per_inference_j
        assert e["kind"] == "estimated" and "TDP" in e["method"]
        assert e["low"] < e["value"] < e["high"]
    d = m.to_json()
    json.dumps(d, allow_nan=False)
    assert d["kind"] == "measured" and d["engine"] == "ort-cpu"
    assert d["session_create_s"]["kind"] == "measured"
    assert d["memory"]["rss_peak_bytes"] >= d["memory"]["rss_before_bytes"]
    assert all(x["kind"] == "measured" and x["method"] for x in d["batches"])


@dataclass(frozen=True)
class _FakeMeasurement:
    energy_j_total: float
    method: str = "fake-counter"
    kind: str = "measured"
    band: tuple = (-0.05, 0.05)
    avg_power_w: float = 10.0
    duration_s: float = 0.5


class _FakeMeter:
    def __init__(self):
        self.open = []

    def begin(self, name):
        self.open.append(name)

    def end(self, name):
        assert self.open.pop() == name
        return _FakeMeasurement(energy_j_total=6.0)


def test_meter_energy_is_divided_per_inference(tiny):
    m = measure(tiny, batch_sizes=(2,), warmup=0, runs=3, meter=_FakeMeter())
    e = m.batches[0].energy_per_inference_j
    assert e["kind"] == "measured" and "fake-counter" in e["method"]
    # the window stays open >= MIN_ENERGY_WINDOW_S with extra untimed runs; the energy is
    # divided by every sample run inside it, which the method states
    samples = int(re.search(r"/ (\d+) samples", e["method"]).group(1))
    assert samples >= 3 * 2 and samples % 2 == 0
    assert e["value"] == pytest.approx(6.0 / samples)
    assert e["low"] == pytest.approx(e["value"] * 0.95) and e["high"] == pytest.approx(e["value"] * 1.05)


def test_fixed_batch_model_skips_other_batches(tmp_path):
    path = _tiny_cnn(tmp_path / "fixed.onnx", batch=1)
    m = measure(path, batch_sizes=(1, 4), warmup=0, runs=2)
    assert m.batches[0].status == "ok"
    assert m.batches[1].status == "skipped" and "fixed batch" in m.batches[1].reason


def test_bad_inputs(tmp_path, tiny):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ModelFileError):
        measure(junk, batch_sizes=(1,), runs=1)
    with pytest.raises(UsageError):
        measure(tiny, batch_sizes=(0,), runs=1)
    with pytest.raises(UsageError):
        measure(tiny, batch_sizes=(1,), runs=1, providers=["NoSuchExecutionProvider"])


def test_cli_benchmark(tiny, tmp_path, monkeypatch):
    from hackforge_edge.cli import app, main

    monkeypatch.setenv("COLUMNS", "200")
    out_json = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["benchmark", str(tiny), "--batch-sizes", "1,2", "--runs", "3",
                                   "--warmup", "1", "--json", str(out_json)])
    assert res.exit_code == 0, res.output
    assert "p50 ms" in res.output and out_json.is_file()
    assert json.loads(out_json.read_text())["batches"][1]["batch"] == 2
    with pytest.raises(HFEdgeError):
        CliRunner().invoke(app, ["benchmark", str(tiny), "--batch-sizes", "1,x"],
                           catch_exceptions=False)
    assert main(["benchmark", str(tmp_path / "missing.onnx")]) != 0
