"""train-and-export with progressive / ewc / l2sp: bad settings are one line before any work;
a tiny EWC run from a state_dict and its source folder writes a complete bundle with the
Fisher, the penalty ratio and the source retention recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackforge_edge.cli import main

TINY = ["--model", "tinycnn", "--epochs", "1", "--image-size", "32", "--batch-size", "16",
        "--quiet", "--no-profile"]


def _run(capsys, args):
    code = main(["train-and-export", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def weights_file(tmp_path):
    torch = pytest.importorskip("torch")
    from hackforge_edge.models.registry import create_model

    path = tmp_path / "source.pt"
    torch.save(create_model("tinycnn", 2, seed=3).state_dict(), path)
    return path


@pytest.mark.parametrize("args, message", [
    (["--strategy", "progressive", "--lr-decay", "0"], "--lr-decay must be > 0"),
    (["--strategy", "progressive", "--lr-decay", "-2.6"], "--lr-decay must be > 0"),
    (["--strategy", "progressive", "--unfreeze-every", "0"], "--unfreeze-every"),
    (["--strategy", "ewc", "--ewc-lambda", "-1"], "--ewc-lambda must be >= 0"),
    (["--strategy", "ewc", "--ewc-gamma", "2"], "--ewc-gamma"),
    (["--strategy", "l2sp", "--l2sp-alpha", "-0.1"], "--l2sp-alpha must be >= 0"),
    (["--strategy", "l2sp", "--l2sp-beta", "-1"], "--l2sp-beta must be >= 0"),
    (["--strategy", "ewc", "--weights", "none"], "needs source data for its Fisher"),
    (["--strategy", "ewc", "--weights", "imagenet"], "needs source data for its Fisher"),
    (["--strategy", "ewc", "--weights", "WEIGHTS"], "needs --source-data DIR"),
    (["--strategy", "finetune", "--source-data", "/nonexistent/src"], "--source-data goes with --weights PATH"),
])
def test_bad_strategy_settings_are_one_line_and_write_nothing(tmp_path, capsys, weights_file, args, message):
    out = tmp_path / "run"
    args = [str(weights_file) if a == "WEIGHTS" else a for a in args]
    code, _, err = _run(capsys, [*TINY, "--out", str(out), *args])
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert not out.exists()


def test_ewc_from_a_state_dict_and_its_source_folder(tmp_path, capsys, weights_file):
    from PIL import Image

    from hackforge_edge.data import synthetic

    src = tmp_path / "source-data"
    imgs, labels = synthetic.generate(24, image_size=32, domain="source", seed=0)
    for i, (im, lab) in enumerate(zip(imgs, labels)):
        d = src / synthetic.CLASS_NAMES[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:03d}.png")
    out = tmp_path / "run"
    code, _, err = _run(capsys, [*TINY, "--strategy", "ewc", "--weights", str(weights_file),
                                 "--source-data", str(src), "--ewc-lambda", "50", "--out", str(out)])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    (ewc,) = manifest["strategy_details"]
    assert ewc["lambda"] == 50 and ewc["fisher"]["per_sample_gradients"] in ("vmap", "loop")
    assert ewc["excluded_tensors"] == ["head.bias", "head.weight"]
    (epoch,) = manifest["training"]["history"]
    assert epoch["penalty_to_task_loss"] is not None and epoch["penalty_to_task_loss"] >= 0
    retention = json.loads((out / "metrics.json").read_text())["source_retention"]
    assert retention["kind"] == "measured" and retention["source"]["kind"] == "imagefolder"
    for key in ("accuracy_before", "accuracy_after", "accuracy_after_source_head"):
        assert 0.0 <= retention[key] <= 1.0
    assert {p["phase"] for p in json.loads((out / "training_carbon.json").read_text())["phases"]} >= {
        "ewc_fisher", "target_transfer", "source_retention_eval"}
    assert np.isclose(retention["retention"], retention["accuracy_after"] / retention["accuracy_before"])
