"""FP16 / INT8 variants: loadable files, their validation entries and the accuracy gate.

Tiny models built in code. "Target-domain" data here are synthetic images whose labels are
the FP32 model's own predictions (FP32 accuracy 1.0), so a variant's accuracy is its top-1
agreement with FP32. No timed asserts: latency is only checked for shape and sign.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
from torch import nn  # noqa: E402

from hackforge_edge.errors import ExportError  # noqa: E402
from hackforge_edge.export import (  # noqa: E402
    accuracy_check,
    export_onnx,
    make_fp16,
    make_int8,
    measure_ort_latency,
    validate_variant,
)


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 4),
    ).eval()


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def _labels(path, images) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": images})[0].argmax(axis=1)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    result = export_onnx(_cnn(0), torch.from_numpy(_images(2, 0)), out / "model.onnx")
    held_out = _images(48, seed=1)
    return out, result.path, held_out, _labels(result.path, held_out)


def _initializer_types(path) -> set[int]:
    return {t.data_type for t in onnx.load(str(path)).graph.initializer}


ENTRY_KEYS = {
    "path", "fp32_path", "size_bytes", "fp32_size_bytes", "size_ratio", "max_abs_diff_logits",
    "accuracy", "latency", "max_accuracy_drop_pp", "min_speedup", "status", "reasons",
}


def test_int8_static_is_loadable_and_gets_a_validation_entry(fp32):
    out, path, held_out, labels = fp32
    calibration = [_images(8, seed=10 + i) for i in range(4)]  # not the held-out samples
    info = make_int8(path, out / "model.int8.onnx", calibration, mode="static")
    assert info["variant"] == "int8-static" and info["calibration_samples"] == 32
    assert info["settings"]["quant_format"] == "QDQ" and info["settings"]["per_channel"] is True
    assert info["settings"]["preprocess"].startswith("quant_pre_process")
    from hackforge_edge.export.int8_format import int8_settings  # engine-aware format (issue 15)
    assert info["settings"]["engine"] == int8_settings()["engine"]
    if info["settings"]["engine"] == "ort-cpu-x86":     # U8S8: uint8 activations, int8 weights
        assert onnx.TensorProto.UINT8 in _initializer_types(info["path"])
    model = onnx.load(info["path"])
    onnx.checker.check_model(model)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    assert onnx.TensorProto.INT8 in _initializer_types(info["path"])
    assert sorted(p.name for p in out.iterdir()) == ["model.int8.onnx", "model.onnx"]

    entry = validate_variant(path, info["path"], held_out, labels, latency_runs=5, latency_warmup=2)
    assert set(entry) == ENTRY_KEYS
    assert entry["size_ratio"] == pytest.approx(entry["size_bytes"] / entry["fp32_size_bytes"], abs=1e-4)
    assert 0 <= entry["max_abs_diff_logits"] < 0.5
    acc = entry["accuracy"]
    assert acc["fp32"] == 1.0 and acc["n_samples"] == 48
    assert acc["drop_pp"] == pytest.approx((acc["fp32"] - acc["variant"]) * 100, abs=1e-6)
    assert entry["status"] == ("accepted" if acc["drop_pp"] <= 1.0 else "rejected")
    lat = entry["latency"]
    assert lat["batch_size"] == 1 and lat["runs"] == 5
    assert lat["fp32"]["median_ms"] > 0 and lat["variant"]["median_ms"] > 0
    assert lat["method"].startswith("measured")
    json.dumps(entry, allow_nan=False)


def test_fp16_keeps_float32_io_and_gets_a_validation_entry(fp32):
    out, path, held_out, labels = fp32
    info = make_fp16(path, out / "model.fp16.onnx")
    assert info["variant"] == "fp16" and info["settings"] == {"keep_io_types": True}
    onnx.checker.check_model(onnx.load(info["path"]))
    assert onnx.TensorProto.FLOAT16 in _initializer_types(info["path"])
    sess = ort.InferenceSession(info["path"], providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    assert sess.get_outputs()[0].type == "tensor(float)"

    entry = validate_variant(path, info["path"], held_out, labels, latency_runs=3, latency_warmup=1)
    assert entry["max_abs_diff_logits"] < 1e-2
    assert entry["accuracy"]["agreement_top1_with_fp32"] >= 0.9
    json.dumps(entry, allow_nan=False)


def test_gate_rejects_a_variant_that_loses_accuracy(fp32, tmp_path):
    _, path, held_out, labels = fp32
    # stands in for a broken variant: same graph, other weights, so top-1 mostly disagrees
    other = export_onnx(_cnn(1), torch.from_numpy(_images(2, 0)), tmp_path / "other.onnx",
                        exporter="legacy")
    entry = validate_variant(path, other.path, held_out, labels, latency_runs=2, latency_warmup=1)
    assert entry["accuracy"]["drop_pp"] > 1.0
    assert entry["status"] == "rejected"
    assert "more than the 1 pp allowed" in entry["reasons"][0]
    lenient = validate_variant(path, other.path, held_out, labels, max_accuracy_drop_pp=100.0,
                               latency_runs=2, latency_warmup=1, min_speedup=1e9)
    assert lenient["status"] == "rejected" and "speedup" in lenient["reasons"][0]


def test_unloadable_variant_is_rejected_not_raised(fp32, tmp_path):
    _, path, held_out, labels = fp32
    broken = tmp_path / "broken.onnx"
    model = onnx.load(path)
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, str(broken))
    entry = validate_variant(path, broken, held_out, labels)
    assert entry["status"] == "rejected" and "could not load" in entry["reasons"][0]
    assert entry["accuracy"] == {} and entry["latency"] == {}
    json.dumps(entry, allow_nan=False)


def test_accuracy_check_and_latency(fp32):
    _, path, held_out, labels = fp32
    acc = accuracy_check(path, held_out, labels, reference_onnx_path=path)
    assert acc["accuracy"] == 1.0 and acc["n_correct"] == 48
    assert acc["agreement_top1_with_reference"] == 1.0
    with pytest.raises(ExportError, match="N labels"):
        accuracy_check(path, held_out, labels[:-1])
    lat = measure_ort_latency(path, held_out[:1], runs=3, warmup=1, threads=1)
    assert lat["batch_size"] == 1 and lat["threads"] == 1 and lat["median_ms"] > 0


def test_int8_argument_errors(fp32, tmp_path):
    _, path, _, _ = fp32
    with pytest.raises(ExportError, match="unknown INT8 mode"):
        make_int8(path, tmp_path / "q.onnx", mode="int4")
    with pytest.raises(ExportError, match="needs calibration batches"):
        make_int8(path, tmp_path / "q.onnx", [], mode="static")
    with pytest.raises(ExportError, match="calibration batch has inputs"):
        make_int8(path, tmp_path / "q.onnx", [{"pixels": _images(2, 0)}], mode="static")
    assert not list(tmp_path.iterdir())


def test_int8_dynamic_on_tiny_bert(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    # onnxruntime's symbolic shape inference fails on this graph and dumps files into the
    # CWD; make_int8 must contain that
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    from hackforge_edge.export import text_classifier_axes

    config = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    gen = torch.Generator().manual_seed(0)
    example = {"input_ids": torch.randint(0, 64, (2, 8), generator=gen),
               "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    fp32 = export_onnx(model, example, tmp_path / "bert.onnx", dynamic_axes=text_classifier_axes())
    info = make_int8(fp32.path, tmp_path / "bert.int8.onnx", mode="dynamic")
    assert info["variant"] == "int8-dynamic" and info["calibration_samples"] == 0
    assert info["settings"]["preprocess"].startswith("value_info cleared")
    ops = {n.op_type for n in onnx.load(info["path"]).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}, ops
    assert info["size_ratio"] < 1.0

    samples = {"input_ids": np.random.default_rng(3).integers(0, 64, (16, 12)).astype(np.int64),
               "attention_mask": np.ones((16, 12), dtype=np.int64)}
    sess = ort.InferenceSession(fp32.path, providers=["CPUExecutionProvider"])
    labels = sess.run(None, samples)[0].argmax(axis=1)
    entry = validate_variant(fp32.path, info["path"], samples, labels, latency_runs=3, latency_warmup=1)
    assert entry["accuracy"]["n_samples"] == 16 and entry["latency"]["batch_size"] == 1
    assert entry["max_abs_diff_logits"] is not None
    json.dumps(entry, allow_nan=False)
    assert list(cwd.iterdir()) == []  # nothing leaked into the working directory
