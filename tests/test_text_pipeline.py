"""``hf-edge train-and-export --task text`` end to end through the real CLI (opt-in:
``-m integration``; a few minutes on 2 cores): a tiny config-built BERT saved as a transformers
directory with a WordPiece tokenizer trained here on the synthetic notes (no download), every
strategy's bundle complete, the export validated at other batch and sequence shapes, variants
(INT8 dynamic, transformer-optimizer fusions) judged on target data, profiled at max length."""

from __future__ import annotations

import json

import pytest

from hackforge_edge.cli import main

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import BertConfig, BertModel

    from hackforge_edge.data.text_preprocess import train_wordpiece
    from hackforge_edge.data.text_synthetic import generate

    d = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(d)
    texts = generate(300, domain="target", seed=0)[0] + generate(300, domain="source", seed=0)[0]
    train_wordpiece(texts, 1200).save(str(d / "tokenizer.json"))
    return d


def test_text_bundle_from_a_local_model_directory(tmp_path, capsys, model_dir):
    out = tmp_path / "run"
    code = main(["train-and-export", "--model", str(model_dir), "--strategy", "lora", "--epochs", "2",
                 "--max-length", "64", "--variants", "int8,fused", "--profile", "local", "--quiet",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    for name in ("manifest.json", "model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json",
                 "preprocess.json", "metrics.json", "export_validation.json", "profile.json", "report.html"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["task"] == "text" and "tokenizer.json" in manifest["artifacts"]
    pre = json.loads((out / "preprocess.json").read_text())
    assert pre["kind"] == "text" and pre["max_length"] == 64 and pre["origin"]["kind"] == "model"
    val = json.loads((out / "export_validation.json").read_text())
    assert val["passed"] and val["shapes_differ_from_export"]
    assert val["outputs"]["logits"]["max_abs_diff"] <= 1e-4
    assert val["input_shapes"]["input_ids"][0] != val["export_input_shapes"]["input_ids"][0]
    assert val["input_shapes"]["input_ids"][1] != val["export_input_shapes"]["input_ids"][1]
    int8 = val["variants"]["int8"]
    assert int8["build"]["mode"] == "dynamic" and int8["validation"]["accuracy"]["n_samples"] == 200
    fused = val["variants"]["fused"]
    assert fused["build"]["applied"] and fused["build"]["vs_pytorch"]["passed"]
    profile = json.loads((out / "profile.json").read_text())
    assert '"seq_len": 64' in json.dumps(profile)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_texts"] == 200 and 0.0 <= metrics["accuracy"] <= 1.0


@pytest.mark.parametrize("strategy", ["scratch", "frozen", "finetune"])
def test_every_strategy_writes_a_bundle(tmp_path, capsys, strategy):
    out = tmp_path / strategy
    code = main(["train-and-export", "--model", "tinybert", "--strategy", strategy, "--epochs", "1",
                 "--data-fraction", "0.5", "--max-length", "48", "--no-profile", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["strategy"] == strategy
    assert manifest["data"]["counts"]["train"]["total"] == 120
    assert json.loads((out / "preprocess.json").read_text())["origin"]["kind"] == "trained"
