"""Model merging: the methods against hand-worked formulas, the multi-head export against
PyTorch, a merged bundle served like onnxruntime answers, and one line per bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from merging_helpers import (
    base_state,
    finetuned_state,
    image_folder,
    write_input_bundle,
)

from hackforge_edge.merging.methods import MergeSettings, merge, slerp
from hackforge_edge.merging.task_vectors import task_vectors


def _tv(base, *finetuned):
    return task_vectors(base, list(finetuned), skip_prefixes=("head.",))


# ------------------------------------------------------------------ methods


def test_task_arithmetic_weight_one_reproduces_the_finetune_exactly():
    base, ft1, ft2 = base_state(), finetuned_state(2, 1), finetuned_state(2, 2)
    merged = merge(_tv(base, ft1, ft2), MergeSettings("task_arithmetic", 2, weights=(1.0, 0.0))).state
    backbone = [k for k in ft1 if not k.startswith("head.")]
    assert set(merged) == set(backbone)
    for k in backbone:
        assert torch.equal(merged[k], ft1[k] if ft1[k].is_floating_point() else base[k]), k
    # integer buffers are carried over, never averaged
    assert merged["features.1.num_batches_tracked"].dtype == torch.int64


def test_ties_matches_the_formula_worked_by_hand():
    base = {"w": torch.zeros(4)}
    t1 = {"w": torch.tensor([1.0, -2.0, 3.0, 0.5])}
    t2 = {"w": torch.tensor([-1.0, -1.0, 2.0, -4.0])}
    # density 0.5 keeps the 2 largest |x| per task: t1 -> [0,-2,3,0], t2 -> [0,0,2,-4];
    # elected sign (total mass [0,-2,5,-4]) -> [+,-,+,-]; mean over agreeing non-zero tasks:
    # [0/1, -2/1, (3+2)/2, -4/1] = [0, -2, 2.5, -4]; lambda 2 doubles it
    got = merge(_tv(base, t1, t2), MergeSettings("ties", 2, density=0.5, lam=2.0)).state["w"]
    assert torch.equal(got, torch.tensor([0.0, -4.0, 5.0, -8.0]))


def test_slerp_endpoints_and_fallback_on_parallel_tensors():
    a, b = torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, -0.5])
    for t, want in ((0.0, a), (1.0, b)):
        got, fell = slerp(t, a, b)
        assert not fell and torch.allclose(got.float(), want, atol=1e-7, rtol=0)
    mid, _ = slerp(0.5, a, b)
    assert abs(float(mid.norm()) - float(a.norm())) < 1e-6  # on the arc, not the chord
    got, fell = slerp(0.25, a, 2 * a)  # parallel: linear interpolation, counted
    assert fell and torch.allclose(got.float(), 1.25 * a)
    # two fine-tunes of one base: every tensor nearly parallel, all counted
    res = merge(_tv(base_state(), finetuned_state(2, 1, scale=1e-3), finetuned_state(2, 2, scale=1e-3)),
                MergeSettings("slerp", 2))
    assert res.slerp_tensors == 12 and res.to_json()["slerp"]["linear_fallbacks"] == res.slerp_linear_fallbacks > 0


def test_dare_with_a_fixed_seed_is_reproducible():
    tv = _tv(base_state(), finetuned_state(2, 1), finetuned_state(2, 2))
    runs = [merge(tv, MergeSettings(m, 2, density=0.3, seed=s)).state
            for m in ("dare_linear", "dare_ties") for s in (7, 7, 8)]
    for first, again, other in (runs[:3], runs[3:]):
        assert all(torch.equal(first[k], again[k]) for k in first)
        assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


# ------------------------------------------------------------------ bundles


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two tiny fine-tunes of one tinycnn base with different class sets, plus a third."""
    root = tmp_path_factory.mktemp("merge")
    d2 = image_folder(root / "d2", ["benign", "malignant"])
    d3 = image_folder(root / "d3", ["a", "b", "c"], seed=1)
    return {"root": root, "a": write_input_bundle(root / "task-a", d2, ["benign", "malignant"], 1),
            "b": write_input_bundle(root / "task-b", d3, ["a", "b", "c"], 2),
            "c": write_input_bundle(root / "task-c", d2, ["benign", "malignant"], 3),
            "d2": d2}


@pytest.fixture(scope="module")
def merged(inputs):
    from hackforge_edge.recipes.merge import MergeConfig, run

    out = inputs["root"] / "merged"
    run(MergeConfig(inputs=(str(inputs["a"]), str(inputs["b"])), method="ties", density=0.8,
                    skip_profile=True, exporter="legacy", out=str(out)), say=lambda _m: None)
    return out


def test_merged_bundle_has_one_output_per_task_matching_pytorch(merged):
    import onnxruntime as ort

    from hackforge_edge.bundle.reader import Bundle
    from hackforge_edge.merging.multitask import _multi_head_cls  # noqa: F401  (same class as export)
    from hackforge_edge.models.weights_file import load_weights

    b = Bundle.open(merged)  # complete, every hash checked
    m = b.manifest.to_json()
    assert m["config"]["strategy"] == "merge:ties" and m["merge"]["merge"]["library"] == "peft"
    assert m["merge"]["merge"]["density"] == 0.8 and m["merge"]["batchnorm"]["updated"] is True
    assert [i["bundle"] for i in m["merge"]["inputs"]] == ["task-a", "task-b"]
    assert all(len(i["manifest_sha256"]) == 64 for i in m["merge"]["inputs"])
    tasks = json.loads((merged / "tasks.json").read_text())["tasks"]
    assert [t["output"] for t in tasks] == ["logits_task_a", "logits_task_b"]
    validation = json.loads((merged / "export_validation.json").read_text())
    assert validation["passed"] and set(validation["outputs"]) == {"logits_task_a", "logits_task_b"}
    # rebuild the PyTorch multi-head model from the bundle's weights and compare at batch 5
    from hackforge_edge.merging.multitask import build_multi_head

    sd = load_weights(merged / "weights.safetensors")
    heads = [{k.replace(f"heads.{i}.", "head."): v for k, v in sd.items() if k.startswith(f"heads.{i}.")}
             for i in range(2)]
    model = build_multi_head("tinycnn", {k[len("backbone."):]: v for k, v in sd.items()
                                         if k.startswith("backbone.")}, heads, ["task_a", "task_b"])
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x))]
    got = ort.InferenceSession(str(merged / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert [g.shape for g in got] == [(5, 2), (5, 3)]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, atol=1e-5)
    ev = json.loads((merged / "merge_eval.json").read_text())
    assert set(ev["rows"]) >= {"input:task_a", "input:task_b", "merge", "base", "ensemble"}
    assert ev["rows"]["input:task_a"]["task_b"] is None  # other classes: not evaluated


def test_merged_bundle_is_served_like_onnxruntime_answers(merged):
    import onnxruntime as ort
    from fastapi.testclient import TestClient

    from hackforge_edge.serving.app import create_app
    from hackforge_edge.serving.settings import load_settings

    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    outs = ort.InferenceSession(str(merged / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    app = create_app(merged, settings=load_settings({"warmup_runs": 1}, environ={}))
    with TestClient(app) as c:
        assert app.state.host.ready.wait(60)
        r = c.post("/v1/predict", json={"inputs": {"input": x.tolist()}})
        meta = c.get("/v1/metadata").json()
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["name"] for t in meta["tasks"]] == ["task_a", "task_b"]
    for (name, labels), out in zip((("task_a", ["benign", "malignant"]), ("task_b", ["a", "b", "c"])), outs):
        preds = body["tasks"][name]["predictions"]
        assert [p["index"] for p in preds] == out.argmax(1).tolist()
        assert [p["label"] for p in preds] == [labels[i] for i in out.argmax(1)]
        e = np.exp(out - out.max(1, keepdims=True))
        np.testing.assert_allclose([[p["probabilities"][lab] for lab in labels] for p in preds],
                                   e / e.sum(1, keepdims=True), atol=1e-6)
    assert [p["index"] for p in body["predictions"]] == outs[0].argmax(1).tolist()


def test_compare_shows_inputs_and_merge_per_task(merged, inputs, capsys, monkeypatch):
    from hackforge_edge.cli import main

    monkeypatch.setenv("COLUMNS", "400")   # the wide strategy table must not wrap the names
    assert main(["compare", str(merged)]) == 0
    out = capsys.readouterr().out
    assert "merge:ties" in out and "input:task_a" in out and "ensemble" in out


# ------------------------------------------------------------------ bad input: one line, exit 2


def _cli(capsys, *args):
    from hackforge_edge.cli import main

    code = main(["merge", *map(str, args), "--no-profile"])
    return code, capsys.readouterr().err


def _variant(inputs, name, **kw):
    path = inputs["root"] / name
    if not path.exists():
        write_input_bundle(path, inputs["d2"], ["benign", "malignant"], 9, **kw)
    return path


@pytest.mark.parametrize("case, message", [
    ("one", "at least two input bundles"),
    ("arch", "different architectures"),
    ("base", "different bases"),
    ("incomplete", "incomplete bundle"),
    ("density0", "--density must be in (0, 1]"),
    ("density2", "--density must be in (0, 1]"),
    ("weights", "--weights has 3 value(s) for 2 inputs"),
    ("slerp3", "slerp interpolates between exactly two models"),
    ("wrongbase", "not their base"),
])
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, capsys, case, message):
    a, b, c = inputs["a"], inputs["b"], inputs["c"]
    out = tmp_path / "out"
    args = {
        "one": [a],
        "arch": [a, _variant(inputs, "arch", model="resnet18")],
        "base": [a, _variant(inputs, "otherbase", base_sha256="0" * 64)],
        "incomplete": [a, _incomplete(inputs)],
        "density0": [a, b, "--method", "dare_linear", "--density", "0"],
        "density2": [a, b, "--method", "ties", "--density", "1.5"],
        "weights": [a, b, "--weights", "1,1,1"],
        "slerp3": [a, b, c, "--method", "slerp"],
        "wrongbase": [a, b, "--base", _wrong_base(tmp_path)],
    }[case]
    code, err = _cli(capsys, *args, "--out", out)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def _incomplete(inputs):
    path = inputs["root"] / "incomplete"
    if not path.exists():
        shutil.copytree(inputs["a"], path)
        (path / "manifest.json").unlink()
    return path


def _wrong_base(tmp_path):
    from hackforge_edge.models.weights_file import save_weights

    save_weights(base_state(seed=5), tmp_path / "base.safetensors")
    return tmp_path / "base.safetensors"


# ------------------------------------------------------------------ LoRA adapters


def _two_adapters():
    from peft import LoraConfig, get_peft_model

    from hackforge_edge.models.registry import create_model

    base = create_model("tinycnn", 2, "none", seed=0)
    cfg = {"r": 2, "lora_alpha": 4, "target_modules": ["features.0", "features.4"]}
    pm = get_peft_model(base, LoraConfig(**cfg), adapter_name="t1")
    pm.add_adapter("t2", LoraConfig(**{**cfg, "r": 3}))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return pm


def _delta(pm, adapter, module):
    layer = pm.base_model.model.get_submodule(module)
    return layer.get_delta_weight(adapter)


def test_lora_cat_is_exact_and_svd_truncates():
    from hackforge_edge.merging.lora import combine_adapters

    pm = _two_adapters()
    want = {m: 0.7 * _delta(pm, "t1", m) + 0.3 * _delta(pm, "t2", m) for m in ("features.0", "features.4")}
    rec = combine_adapters(pm, ["t1", "t2"], [0.7, 0.3], combination="cat", name="both")
    assert rec["rank"] == 5 and rec["library"] == "peft"
    for m, w in want.items():
        torch.testing.assert_close(_delta(pm, "both", m), w, atol=1e-6, rtol=1e-5)
    combine_adapters(pm, ["t1", "t2"], [0.7, 0.3], combination="svd", svd_rank=1, name="small")
    with torch.no_grad():
        err = (_delta(pm, "small", "features.4") - want["features.4"]).norm() / want["features.4"].norm()
    assert pm.peft_config["small"].r == 1 and 0 < float(err) < 1  # truncated, not exact


def test_a_saved_adapter_loads_back_without_its_head(tmp_path):
    from peft import LoraConfig, get_peft_model

    from hackforge_edge.merging.lora import load_adapters, save_adapter
    from hackforge_edge.models.registry import create_model

    pm = get_peft_model(create_model("tinycnn", 2, "none", seed=0),
                        LoraConfig(r=2, lora_alpha=4, target_modules=["features.4"], modules_to_save=["head"]))
    with torch.no_grad():
        pm.base_model.model.features[4].lora_B["default"].weight.normal_()
    d = save_adapter(pm, tmp_path)
    assert (d / "adapter_config.json").is_file() and (d / "adapter_model.safetensors").is_file()
    assert save_adapter(create_model("tinycnn", 2, "none"), tmp_path / "plain") is None
    loaded = load_adapters(create_model("tinycnn", 2, "none", seed=0), [d], ["t1"])
    assert loaded.peft_config["t1"].modules_to_save is None
    torch.testing.assert_close(_delta(loaded, "t1", "features.4"), _delta(pm, "default", "features.4"))


@pytest.mark.parametrize("kwargs, message", [
    ({"combination": "linear"}, "not offered"),
    ({"adapters": ["t1", "t1"]}, "listed twice"),
    ({"name": "t2"}, "exists already"),
    ({"weights": [1.0]}, "1 weight(s) for 2 adapters"),
])
def test_lora_bad_combinations_are_refused(kwargs, message):
    from hackforge_edge.errors import UsageError
    from hackforge_edge.merging.lora import combine_adapters

    pm = _two_adapters()
    args = {"adapters": ["t1", "t2"], "weights": [0.5, 0.5], **kwargs}
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        combine_adapters(pm, args.pop("adapters"), args.pop("weights"), **args)
