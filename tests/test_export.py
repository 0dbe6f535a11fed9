"""Export stage: LoRA folding, ONNX export (dynamo + legacy fallback), validation at other shapes.

Tiny models built in code; nothing is downloaded. Each export is a few seconds on a busy
2-core machine, so exports are shared through module-scoped fixtures.
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
from hackforge_edge.export import export_onnx, fold_lora, validate_export  # noqa: E402
from hackforge_edge.export import onnx_export as onnx_export_mod  # noqa: E402
from hackforge_edge.export.fold import has_lora  # noqa: E402


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


class DataDependentCNN(TinyCNN):
    """Python control flow on a tensor value: torch.export refuses it, TorchScript traces it."""

    def forward(self, x):
        if float(x.abs().sum()) > -1.0:  # always true, but data-dependent for torch.export
            return self.fc(self.features(x))
        return -self.fc(self.features(x))


def _cnn(seed: int = 0, num_classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    model = TinyCNN(num_classes)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding BN is really tested
        model.features[1].running_mean.uniform_(-0.5, 0.5)
        model.features[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _images(batch: int, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory):
    model = _cnn()
    path = tmp_path_factory.mktemp("cnn") / "model.onnx"
    result = export_onnx(model, (_images(2),), path, input_names=["input"], output_names=["logits"])
    return model, result


# ----------------------------------------------------------------------------- export + validate
def test_cnn_dynamo_export_validates_at_another_batch(cnn_export):
    model, result = cnn_export
    assert result.exporter == "dynamo" and result.fallback_reason is None
    assert result.opset == 18
    assert result.input_names == ["input"] and result.output_names == ["logits"]
    assert result.export_input_shapes == {"input": [2, 3, 16, 16]}
    assert result.file_size_bytes == onnx_export_mod.Path(result.path).stat().st_size
    assert result.external_data_path is None
    assert result.node_count == len(onnx.load(result.path).graph.node) > 0
    # atomic write: nothing but the model is left in the directory
    assert [p.name for p in onnx_export_mod.Path(result.path).parent.iterdir()] == ["model.onnx"]

    report = validate_export(model, result.path, _images(5, seed=7), output_names=["logits"],
                             export_input_shapes=result.export_input_shapes)
    assert report["passed"] is True
    assert report["shapes_differ_from_export"] is True
    out = report["outputs"]["logits"]
    assert out["shape"] == [5, 3] and out["shape_checked"] is True
    assert out["max_abs_diff"] <= 1e-4
    assert out["atol"] == 1e-4 and out["rtol"] == 1e-3
    json.dumps(report, allow_nan=False)  # written as export_validation.json
    json.dumps(result.to_dict(), allow_nan=False)


def test_export_restores_training_mode_and_weights(tmp_path):
    model = _cnn().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, _images(2), tmp_path / "m.onnx", exporter="legacy")
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_legacy_exporter_on_request_records_it(tmp_path):
    model = _cnn()
    result = export_onnx(model, (_images(2),), tmp_path / "m.onnx", exporter="legacy")
    assert result.exporter == "legacy" and result.fallback_reason == "requested"
    report = validate_export(model, result.path, _images(3, seed=3))
    assert report["passed"], report


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_auto_falls_back_to_legacy_when_dynamo_cannot_trace(tmp_path):
    torch.manual_seed(0)
    model = DataDependentCNN().eval()
    result = export_onnx(model, (_images(2),), tmp_path / "m.onnx")
    assert result.exporter == "legacy"
    assert result.fallback_reason.startswith("dynamo export failed: TorchExportError (")
    assert len(result.fallback_reason) <= 330 and "\n" not in result.fallback_reason
    assert validate_export(model, result.path, _images(4))["passed"]


def test_export_failures_are_export_errors(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("cannot trace\nsecond line")

    monkeypatch.setattr(onnx_export_mod, "_export_dynamo", boom)
    with pytest.raises(ExportError, match="dynamo export failed: RuntimeError: cannot trace$"):
        export_onnx(_cnn(), _images(2), tmp_path / "a.onnx", exporter="dynamo")
    monkeypatch.setattr(onnx_export_mod, "_export_legacy", boom)
    with pytest.raises(ExportError, match="dynamo export failed.*legacy export failed"):
        export_onnx(_cnn(), _images(2), tmp_path / "b.onnx")
    assert not list(tmp_path.iterdir())  # no half-written files
    with pytest.raises(ExportError, match="unknown exporter"):
        export_onnx(_cnn(), _images(2), tmp_path / "c.onnx", exporter="tflite")


def test_dynamic_axis_of_size_one_is_refused(tmp_path):
    with pytest.raises(ExportError, match="dynamic axis batch; use >= 2"):
        export_onnx(_cnn(), _images(1), tmp_path / "m.onnx")


def test_external_data_written_beside_the_model(tmp_path):
    model = _cnn()
    result = export_onnx(model, _images(2), tmp_path / "model.onnx", exporter="legacy",
                         single_file_limit_bytes=0)
    data = tmp_path / "model.onnx.data"
    assert result.external_data_path == str(data) and data.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert result.file_size_bytes == (tmp_path / "model.onnx").stat().st_size + data.stat().st_size
    assert validate_export(model, result.path, _images(3))["passed"]
    # a later single-file export under the same name removes the stale weights file
    export_onnx(model, _images(2), tmp_path / "model.onnx", exporter="legacy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# ----------------------------------------------------------------------------- mismatches
def test_input_name_mismatch_raises(cnn_export):
    model, result = cnn_export
    with pytest.raises(ExportError, match="input names differ"):
        validate_export(model, result.path, {"pixel_values": _images(3)})


def test_output_name_mismatch_raises(cnn_export):
    model, result = cnn_export
    with pytest.raises(ExportError, match="output names differ"):
        validate_export(model, result.path, _images(3), output_names=["probs"])


def test_input_shape_mismatch_raises(cnn_export):
    model, result = cnn_export
    with pytest.raises(ExportError, match="onnxruntime rejected inputs"):
        validate_export(model, result.path, _images(3, size=20))  # H, W are static


def test_output_shape_mismatch_raises(cnn_export):
    _, result = cnn_export
    with pytest.raises(ExportError, match=r"output logits shape \[3, 3\] differs from PyTorch \[3, 4\]"):
        validate_export(_cnn(num_classes=4), result.path, _images(3))


def test_tolerance_miss_is_reported_not_raised(cnn_export):
    model, result = cnn_export
    drifted = _cnn()
    with torch.no_grad():
        drifted.fc.bias.add_(0.01)
    report = validate_export(drifted, result.path, _images(3))
    out = report["outputs"]["logits"]
    assert report["passed"] is False and out["passed"] is False
    assert out["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert out["max_rel_diff"] > 0
    json.dumps(report, allow_nan=False)


# ----------------------------------------------------------------------------- LoRA folding
def _randomise_lora_b(model: nn.Module) -> None:
    # PEFT initialises lora_B to zero, which would make any merge trivially exact
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)


def test_fold_lora_from_project_strategy_matches_and_exports_like_base(tmp_path):
    models = pytest.importorskip("hackforge_edge.models.registry")
    strategies = pytest.importorskip("hackforge_edge.strategies.registry")
    base = models.create_model("tinycnn", 3, seed=0).eval()
    peft_model, _ = strategies.apply_strategy(models.create_model("tinycnn", 3, seed=0), "lora",
                                              lora_rank=4, lora_alpha=8)
    _randomise_lora_b(peft_model)
    peft_model.eval()
    x = _images(4, seed=2)

    folded = fold_lora(peft_model)
    assert has_lora(peft_model) and not has_lora(folded)
    assert not any("lora_" in n for n, _ in folded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), peft_model(x), atol=1e-5, rtol=0)
    # the original is untouched: adapters still there, unmerged and trainable
    lora_params = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    assert lora_params and all(p.requires_grad for p in lora_params)
    assert not any(getattr(m, "merged", False) for m in peft_model.modules())

    r_folded = export_onnx(folded, x[:2], tmp_path / "folded.onnx")
    r_base = export_onnx(base, x[:2], tmp_path / "base.onnx")
    assert r_folded.exporter == r_base.exporter == "dynamo"
    assert r_folded.node_count == r_base.node_count  # acceptance: LoRA costs no extra ops
    assert r_folded.file_size_bytes == pytest.approx(r_base.file_size_bytes, rel=0.05)
    assert validate_export(peft_model, r_folded.path, _images(3, seed=9), atol=1e-5)["passed"]


def test_fold_lora_injected_adapters_and_bf16():
    peft = pytest.importorskip("peft")
    model = _cnn()
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["features.0", "features.3", "fc"])
    peft.inject_adapter_in_model(config, model)
    _randomise_lora_b(model)
    x = _images(3)
    with torch.no_grad():
        expected = model(x)
    folded = fold_lora(model.to(torch.bfloat16))
    assert not has_lora(folded) and isinstance(folded.fc, nn.Linear)
    assert all(p.dtype == torch.float32 for p in folded.parameters())
    assert has_lora(model) and next(model.parameters()).dtype == torch.bfloat16
    with torch.no_grad():  # bf16 round trip of the weights dominates the error
        torch.testing.assert_close(folded(x), expected, atol=5e-2, rtol=0)


def test_fold_without_adapters_is_an_fp32_copy():
    model = _cnn().half()
    folded = fold_lora(model)
    assert folded is not model and not folded.training
    for (name, p), (_, q) in zip(model.state_dict().items(), folded.state_dict().items()):
        assert q.dtype == (torch.float32 if p.is_floating_point() else p.dtype), name
        assert torch.equal(p.float(), q.float()), name
    assert next(model.parameters()).dtype == torch.float16
    with pytest.raises(ExportError, match="expects a torch.nn.Module"):
        fold_lora("model.pt")


# ----------------------------------------------------------------------------- text model
def test_tiny_bert_export_dynamic_batch_and_sequence(tmp_path):
    transformers = pytest.importorskip("transformers")
    from hackforge_edge.export import text_classifier_axes

    config = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    gen = torch.Generator().manual_seed(0)
    example = {
        "input_ids": torch.randint(0, 64, (2, 8), generator=gen),
        "attention_mask": torch.ones(2, 8, dtype=torch.long),
    }
    result = export_onnx(model, example, tmp_path / "bert.onnx",
                         dynamic_axes=text_classifier_axes(), output_names=["logits"])
    assert result.exporter == "dynamo", result.fallback_reason
    assert result.input_names == ["input_ids", "attention_mask"]
    assert result.output_names == ["logits"]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in onnx.load(result.path).graph.input}
    assert all(isinstance(d, str) for shape in dims.values() for d in shape), dims

    mask = torch.ones(3, 13, dtype=torch.long)
    mask[0, 9:] = 0  # padding, so the mask really matters
    other = {"input_ids": torch.randint(0, 64, (3, 13), generator=gen), "attention_mask": mask}
    report = validate_export(model, result.path, other, output_names=["logits"],
                             export_input_shapes=result.export_input_shapes)
    assert report["shapes_differ_from_export"] is True
    assert report["input_shapes"] == {"input_ids": [3, 13], "attention_mask": [3, 13]}
    assert report["outputs"]["logits"]["shape"] == [3, 3]
    assert report["passed"], report
    sess = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    assert sess.run(None, {k: np.asarray(v) for k, v in other.items()})[0].shape == (3, 3)


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, hackforge_edge.export; print(any(m in sys.modules for m in ('torch', 'onnx', 'onnxruntime')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
