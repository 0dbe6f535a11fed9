"""Opt-in (``pytest -m integration``): the no-argument ``hf-edge train-and-export`` exactly as a
new user runs it, with an empty model cache (the source model is pretrained first)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_default_run_from_an_empty_cache(tmp_path, monkeypatch, capsys):
    from hackforge_edge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train-and-export", "--quiet"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["source_model"]["cache_hit"] is False
    validation = json.loads((run / "export_validation.json").read_text())
    assert validation["passed"] and all(o["max_abs_diff"] <= 1e-4 for o in validation["outputs"].values())
    metrics = json.loads((run / "metrics.json").read_text())
    # transfer from the synthetic source should beat chance clearly on the default data
    assert metrics["accuracy"] > 0.8
    carbon = json.loads((run / "training_carbon.json").read_text())
    phases = {p["phase"]: p for p in carbon["phases"]}
    assert phases["source_pretrain"]["kind"] != "cache-hit" and phases["source_pretrain"]["energy_j"] > 0
    assert (run / "report.html").is_file()
