"""Two tiny transfer scenarios through ``hf-edge gate`` and ``train-and-export --gate stop``.

A benign start (tinycnn trained on the synthetic source domain's real labels) and a harmful one
(the same images with permuted labels) are trained here in a few seconds on 32 px tiles. The
target is the same domain (other tiles, other seed), where transfer from real labels helps.
The gate must rank benign > scratch reference > permuted, call the permuted start "hurts", and
``--gate stop`` must refuse it with exit code 3 and one line naming the better start.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackforge_edge.cli import main

SIZE = 32


def _fit(x, y, epochs: int, path) -> None:
    """AdamW + cosine on precomputed tensors (the toolkit's recipe, minus augmentation)."""
    import torch

    from hackforge_edge.models.registry import create_model

    torch.manual_seed(1)
    model = create_model("tinycnn", 2, "none", seed=1)
    batches = -(-len(x) // 32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(32):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    torch.save(model.state_dict(), path)


@pytest.fixture(scope="module")
def starts(tmp_path_factory):
    import torch

    from hackforge_edge.data.loader import load_dataset

    d = tmp_path_factory.mktemp("starts")
    src = load_dataset("synthetic-source", image_size=SIZE, seed=5,
                       synthetic_sizes={"train": 160, "val": 0, "test": 0})
    x = torch.from_numpy(src.train.to_nchw(src.preprocess))
    y = torch.from_numpy(src.train.labels)
    _fit(x, y, 8, d / "benign.pt")
    perm = torch.from_numpy(np.random.default_rng(3).permutation(src.train.labels))
    _fit(x, perm, 15, d / "permuted.pt")
    return d / "benign.pt", d / "permuted.pt"


def test_gate_ranks_benign_above_scratch_above_permuted(starts, tmp_path, capsys):
    benign, permuted = starts
    code = main(["gate", "--model", "tinycnn", "--image-size", str(SIZE), "--train-images", "160",
                 "--target", "synthetic-source", "--source", "none",
                 "--weights", f"{benign},{permuted}", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "gate.json").read_text())
    by = {s["name"]: s for s in report["starts"]}
    assert by[str(benign)]["rank"] < by["none"]["rank"] < by[str(permuted)]["rank"]
    assert by[str(permuted)]["verdict"] == "hurts"
    assert by[str(benign)]["verdict"] in ("helps", "uncertain")
    assert report["recommended"] == str(benign)
    # a start with a source head gets LEEP; the scratch reference has none
    assert by[str(benign)]["leep"] is not None and by["none"]["leep"] is None
    assert by[str(benign)]["shift"] == {}  # --source none: no shift statistics
    assert "hurts" in out and "recommended start" in out


def test_train_and_export_gate_stop_refuses_harmful_start(starts, tmp_path, capsys):
    _, permuted = starts
    args = ["train-and-export", "--model", "tinycnn", "--image-size", str(SIZE), "--strategy",
            "finetune", "--epochs", "1", "--no-profile", "--quiet", "--weights", str(permuted),
            "--data", "synthetic-source",
            "--out", str(tmp_path / "run")]
    assert main(args + ["--gate", "stop"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predicted to hurt" in err[0] and "better start" in err[0]
    assert "--weights none" in err[0] or "scratch" in err[0]
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_gate_with_source_data_measures_shift(starts, tmp_path):
    from hackforge_edge.recipes.gate import GateConfig, run_gate

    benign, _ = starts
    report, path = run_gate(GateConfig(model="tinycnn", image_size=SIZE, weights=(str(benign),),
                                       synthetic_train=40, out=str(tmp_path)))
    assert path.name == "gate.json"
    from hackforge_edge.gate.report import GateReport

    again = GateReport.read(tmp_path)
    entry = again.entry(str(benign))
    assert set(entry.shift) >= {"mmd", "pad", "ks"} and 0.0 <= entry.shift["pad"]["pad"] <= 2.0
    assert 0.0 <= entry.cka_vs_reference <= 1.0 and again.thresholds["confidence"] == 0.9


def test_gate_bad_input_is_one_line(tmp_path, capsys):
    assert main(["gate", "--model", "tinycnn", "--image-size", "32", "--weights", "nope"]) == 2
    assert "unknown start 'nope'" in capsys.readouterr().err
    assert main(["gate", "--model", "tinycnn", "--image-size", "32", "--weights", "none",
                 "--train-images", "6", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "at least 5" in err and len(err.strip().splitlines()) == 1
    assert main(["train-and-export", "--gate", "maybe", "--no-profile"]) == 2
