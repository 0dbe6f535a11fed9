"""Static ONNX analysis: MACs of known models, costing rules, and clean errors."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hackforge_edge.errors import ModelFileError
from hackforge_edge.profiling.static import analyze, parse_input_shapes


# ---- hand-built graphs (no torch) --------------------------------------------------------------
def _save(tmp_path, name, nodes, inputs, outputs, inits=(), opset=17, domains=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    imports = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]]
    model = helper.make_model(graph, opset_imports=imports, ir_version=10)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _w(name, shape):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def test_conv_and_depthwise_costs(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y1"], ["y2"]),
             helper.make_node("Conv", ["y2", "w2"], ["y3"], group=8, pads=[1, 1, 1, 1])]
    p = _save(tmp_path, "convs", nodes, [_vi("x", ["N", 3, 16, 16])], [_vi("y3", None)],
              [_w("w1", [8, 3, 3, 3]), _w("b1", [8]), _w("w2", [8, 1, 3, 3])])
    s = analyze(p, batch=2)
    conv, relu, dw = s.layers
    assert conv.category == "conv" and conv.macs == 2 * 8 * 16 * 16 * 3 * 9
    assert conv.flops == 2 * conv.macs + 2 * 8 * 16 * 16       # + bias adds
    assert dw.category == "dwconv" and dw.macs == 2 * 8 * 16 * 16 * 9
    assert relu.category == "elementwise" and relu.macs == 0 and relu.flops == 2 * 8 * 16 * 16
    assert relu.bytes_moved == 2 * (2 * 8 * 16 * 16 * 4)
    assert s.params == 8 * 27 + 8 + 8 * 9 and s.weight_bytes == 4 * s.params
    assert s.flops >= 2 * s.macs and not s.uncosted_ops
    assert s.input_shapes == {"x": [2, 3, 16, 16]}


def test_batched_matmul_gemm_and_einsum(tmp_path):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["c"]),
             helper.make_node("Gemm", ["m", "wt"], ["g"], transB=1),
             helper.make_node("Einsum", ["a", "b"], ["e"], equation="bhik,bhkj->bhij")]
    p = _save(tmp_path, "mm", nodes, [_vi("a", [2, 3, 4, 5]), _vi("b", [2, 3, 5, 6]),
                                      _vi("m", ["N", 10])],
              [_vi("c", None), _vi("g", None), _vi("e", None)], [_w("wt", [7, 10])])
    s = analyze(p, batch=4)
    mm, gemm, ein = s.layers
    assert mm.macs == 2 * 3 * 4 * 6 * 5
    assert gemm.macs == 4 * 10 * 7
    assert ein.macs == mm.macs


def test_peak_activation_liveness(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y1"]), helper.make_node("Relu", ["y1"], ["y2"]),
             helper.make_node("Relu", ["y2"], ["y3"])]
    p = _save(tmp_path, "chain", nodes, [_vi("x", [1, 1000])], [_vi("y3", None)])
    s = analyze(p)
    assert s.peak_activation_bytes == 2 * 4000     # never more than two live tensors


def test_uncosted_ops_are_listed_not_zeroed(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("MysteryOp", ["y"], ["z"], domain="com.example")]
    p = _save(tmp_path, "mystery", nodes, [_vi("x", [1, 8])], [_vi("z", [1, 8])],
              domains=("com.example",))
    s = analyze(p)
    assert s.uncosted_ops == {"MysteryOp": 1}
    assert any("MysteryOp" in w for w in s.warnings)
    assert s.to_json()["uncosted_ops"] == {"MysteryOp": 1}


def test_unknown_non_batch_dim_asks_for_input_shape(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    p = _save(tmp_path, "sym", nodes, [_vi("x", ["N", "features"])], [_vi("y", None)])
    with pytest.raises(ModelFileError) as exc:
        analyze(p)
    assert "--input-shape" in str(exc.value) and "x=" in str(exc.value)
    s = analyze(p, input_shapes=["x=3x10"])
    assert s.input_shapes == {"x": [3, 10]} and s.layers[0].flops == 30
    with pytest.raises(ModelFileError, match="not inputs"):
        analyze(p, input_shapes={"nope": [1, 2]})


def test_input_shape_cannot_contradict_a_fixed_dim(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    p = _save(tmp_path, "fixed", nodes, [_vi("x", ["N", 8])], [_vi("y", None)])
    assert analyze(p, input_shapes=["x=4x8"]).input_shapes == {"x": [4, 8]}
    with pytest.raises(ModelFileError, match="fixes it at 8"):
        analyze(p, input_shapes=["x=4x2"])


def test_text_inputs_get_seq_len(tmp_path):
    nodes = [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT)]
    p = _save(tmp_path, "txt", nodes, [_vi("input_ids", ["batch", "seq"], TensorProto.INT64)],
              [_vi("f", None)])
    with pytest.raises(ModelFileError, match="seq-len"):
        analyze(p)
    assert analyze(p, batch=2, seq_len=16).input_shapes == {"input_ids": [2, 16]}


def test_bad_files_give_one_line_errors(tmp_path):
    txt = tmp_path / "notes.onnx"
    txt.write_text("this is not a model at all\n" * 20)
    with pytest.raises(ModelFileError) as exc:
        analyze(txt)
    assert "\n" not in str(exc.value)
    good = _save(tmp_path, "ok", [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 4])],
                 [_vi("y", None)])
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ModelFileError):
        analyze(trunc)
    with pytest.raises(ModelFileError, match="no such file"):
        analyze(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError):
        parse_input_shapes(["x=1xfoo"])


# ---- real models exported from torch with random weights ---------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The three torchvision graphs, through the legacy TorchScript exporter: the same Conv/Gemm
    nodes as the dynamo export that ``calibrate.export_reference`` makes, in a fifth of the time."""
    torchvision = pytest.importorskip("torchvision")
    import torch

    out = tmp_path_factory.mktemp("ref")
    paths = {}
    for name in ("resnet50", "mobilenet_v2", "efficientnet_b0"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        paths[name] = out / f"{name}.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(paths[name]), dynamo=False,
                              input_names=["input"], output_names=["logits"], opset_version=17,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return paths


@pytest.mark.parametrize("name,gmacs", [("resnet50", 4.09), ("mobilenet_v2", 0.30),
                                        ("efficientnet_b0", 0.39)])
def test_torchvision_macs_within_5_percent(exported, name, gmacs):
    s = analyze(exported[name], batch=1)
    assert s.macs / 1e9 == pytest.approx(gmacs, rel=0.05)
    assert not s.uncosted_ops, s.uncosted_ops
    assert s.peak_activation_bytes > 0 and s.weight_bytes > 0
    if name == "efficientnet_b0":   # torchvision: 5,288,548 params
        assert s.params == pytest.approx(5_288_548, rel=0.02)
    s2 = analyze(exported[name], batch=2)
    assert s2.macs == 2 * s.macs


def _bert_macs(layers, hidden, inter, seq, labels=2):
    per_layer = 4 * seq * hidden * hidden + 2 * seq * hidden * inter + 2 * seq * seq * hidden
    return layers * per_layer + hidden * hidden + hidden * labels


def _export_bert(tmp_path, **cfg):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**cfg)).eval()
    ids = torch.randint(0, 100, (1, 32))
    path = tmp_path / "bert.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask")})
    return path


def test_small_bert_matches_analytic_formula(tmp_path):
    cfg = dict(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128, max_position_embeddings=256)
    path = _export_bert(tmp_path, **cfg)
    s = analyze(path, batch=1, seq_len=128)
    assert not s.uncosted_ops, s.uncosted_ops
    assert s.macs == pytest.approx(_bert_macs(2, 64, 128, 128), rel=0.01)
    s3 = analyze(path, batch=3, seq_len=40)
    assert s3.macs == pytest.approx(3 * _bert_macs(2, 64, 128, 40), rel=0.01)


@pytest.mark.slow
def test_bert_base_seq128_about_11_2_gmacs(tmp_path):
    path = _export_bert(tmp_path)          # BertConfig() = BERT-base
    s = analyze(path, batch=1, seq_len=128)
    assert s.macs / 1e9 == pytest.approx(11.2, rel=0.05)
