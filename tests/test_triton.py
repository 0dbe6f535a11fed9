"""``hf-edge export-triton``: the repository layout, parsed back with Triton's own ModelConfig
schema (from the ``tritonclient`` package), and the copied model loaded by onnxruntime."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from hackforge_edge.bundle import write_manifest
from hackforge_edge.cli import app
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.errors import BundleError, UsageError
from hackforge_edge.serving.triton import TritonOptions, export_triton


def triton_model_config():
    """Triton's ModelConfig message. ``tritonclient.grpc``'s package __init__ needs grpcio, which
    the dev extra does not install, so the generated module is loaded from its file."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None:
        pytest.skip("tritonclient (dev extra) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
    mspec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def parse_config(path: Path):
    from google.protobuf import text_format

    cfg = triton_model_config().ModelConfig()
    text_format.Parse(path.read_text(), cfg)   # raises ParseError on anything not in the schema
    return cfg


def _image_bundle(out: Path) -> Path:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3)).eval()
    out.mkdir(parents=True)
    torch.onnx.export(model, (torch.randn(2, 3, 16, 16),), str(out / "model.onnx"), dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    (out / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    (out / "preprocess.json").write_text(json.dumps(ImagePreprocess(image_size=(16, 16)).to_json()))
    write_manifest(out, config={"model": "tiny"}, seed=0, started_at="2026-01-01T00:00:00+00:00")
    return out


def _text_bundle(out: Path) -> Path:
    """int64 input_ids + attention_mask [batch, seq] -> logits [batch, 2], built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    emb = helper.make_tensor("emb", TensorProto.FLOAT, [10, 2], np.arange(20, dtype=np.float32).tolist())
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
             helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "ax"], ["m3"]),
             helper.make_node("Mul", ["e", "m3"], ["em"]),
             helper.make_node("ReduceSum", ["em", "ax1"], ["logits"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [emb, helper.make_tensor("ax", TensorProto.INT64, [1], [2]),
         helper.make_tensor("ax1", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out.mkdir(parents=True)
    onnx.save(model, str(out / "model.onnx"))
    (out / "labels.json").write_text(json.dumps(["routine", "urgent"]))
    (out / "tokenizer.json").write_text("{}")
    write_manifest(out, config={"model": "tinytext"}, seed=0, started_at="2026-01-01T00:00:00+00:00")
    return out


def test_image_bundle_repository_parses_with_triton_schema(tmp_path):
    b = _image_bundle(tmp_path / "img")
    model_dir = export_triton(b, tmp_path / "repo", TritonOptions(name="patches", max_batch_size=4))
    assert model_dir == tmp_path / "repo" / "patches"
    cfg = parse_config(model_dir / "config.pbtxt")
    assert cfg.name == "patches" and cfg.backend == "onnxruntime" and cfg.max_batch_size == 4
    (inp,), (out,) = cfg.input, cfg.output
    assert (inp.name, list(inp.dims), inp.format) == ("input", [3, 16, 16], inp.FORMAT_NCHW)
    assert inp.data_type == triton_model_config().TYPE_FP32
    assert (out.name, list(out.dims), out.label_filename) == ("logits", [3], "labels.txt")
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert (model_dir / "labels.txt").read_text().split() == ["a", "b", "c"]
    assert "mean" in (model_dir / "PREPROCESSING.md").read_text()
    # the copied model is the bundle's, byte for byte, and runs in onnxruntime at Triton's batch
    assert (model_dir / "1" / "model.onnx").read_bytes() == (b / "model.onnx").read_bytes()
    sess = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((4, 3, 16, 16), np.float32)})[0]
    assert y.shape == (4, 3)


def test_text_bundle_and_gpu_options(tmp_path):
    b = _text_bundle(tmp_path / "txt")
    opts = TritonOptions(instance_kind="gpu", tensorrt=True, dynamic_batching=False)
    model_dir = export_triton(b, tmp_path / "repo", opts)
    cfg = parse_config(model_dir / "config.pbtxt")
    assert [(i.name, list(i.dims), i.data_type) for i in cfg.input] == [
        ("input_ids", [-1], cfg.input[0].data_type), ("attention_mask", [-1], cfg.input[1].data_type)]
    assert cfg.input[0].data_type == triton_model_config().TYPE_INT64
    assert not cfg.HasField("dynamic_batching")
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
    acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    assert (model_dir / "tokenizer.json").is_file()
    assert "tokenizers" in (model_dir / "PREPROCESSING.md").read_text()


def test_cli_export_and_bad_input(tmp_path):
    b = _image_bundle(tmp_path / "img")
    runner = CliRunner()
    res = runner.invoke(app, ["export-triton", str(b), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "img" / "config.pbtxt").is_file()
    # an existing model directory is not replaced silently
    with pytest.raises(UsageError, match="exists"):
        export_triton(b, tmp_path / "r")
    with pytest.raises(UsageError, match="instance-kind"):
        export_triton(b, tmp_path / "r2", TritonOptions(instance_kind="tpu"))
    with pytest.raises(UsageError, match="GPU instances"):
        export_triton(b, tmp_path / "r2", TritonOptions(instance_kind="cpu", tensorrt=True))
    # an incomplete bundle (no manifest) is refused like everywhere else
    (b / "manifest.json").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        export_triton(b, tmp_path / "r3")


def test_fixed_batch_model_needs_max_batch_size_zero(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    out = tmp_path / "fixed"
    out.mkdir()
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out / "model.onnx"))
    write_manifest(out, config={}, seed=0, started_at="2026-01-01T00:00:00+00:00")
    with pytest.raises(UsageError, match="max-batch-size 0"):
        export_triton(out, tmp_path / "r")
    cfg = parse_config(export_triton(out, tmp_path / "r", TritonOptions(max_batch_size=0)) / "config.pbtxt")
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [1, 4]
