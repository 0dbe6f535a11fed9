"""Strategy comparison on hand-made bundles, and ``hf-edge compare``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hackforge_edge.energy.compare import compare_bundles, comparison_markdown, render_comparison_table
from hackforge_edge.errors import BundleError


def make_bundle(root: Path, name: str, strategy: str, acc: float, trainable: int, kwh: float,
                kind: str = "estimated", phases: list | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({
        "config": {"model": "resnet18", "strategy": strategy, "epochs": 1, "data_fraction": 1.0, "seed": 0},
        # the keys of strategies.ParamReport.to_json(), as the pipeline writes them
        "params": {"total_params": 11_000_000, "trainable_params": trainable,
                   "frozen_params": 11_000_000 - trainable, "adapter_params": 0,
                   "total_fp32_mb": 44.0}}))
    (d / "metrics.json").write_text(json.dumps({
        "accuracy": acc, "f1": acc - 0.01, "sensitivity": 0.9, "specificity": 0.8, "roc_auc": 0.95,
        "confusion_matrix": [[1, 0], [0, 1]]}))
    (d / "training_carbon.json").write_text(json.dumps({
        "kind": kind, "methods": ["cpu-tdp-estimate"], "phases": phases or [],
        "totals": {"energy_kwh": kwh, "co2_kg": kwh * 0.481, "band": [-0.6, 1.9], "complete": True},
        "grid": {"region": "WORLD", "intensity_g_per_kwh": 481, "basis": "lifecycle", "year": 2023, "pue": 1.0}}))
    return d


@pytest.fixture
def bundles(tmp_path):
    return [make_bundle(tmp_path, "scratch", "scratch", 0.80, 11_000_000, 2.0),
            make_bundle(tmp_path, "lora", "lora", 0.86, 100_000, 0.5),
            make_bundle(tmp_path, "probe", "linear_probe", 0.83, 1_000, 0.25)]


def test_rows_and_change_against_scratch(bundles):
    rows = compare_bundles(bundles)
    assert [r["strategy"] for r in rows] == ["scratch", "lora", "linear_probe"]
    lora = rows[1]
    assert lora["trainable_params"] == 100_000 and lora["energy_kwh"] == 0.5
    vs = lora["vs_scratch"]
    assert vs["baseline"] == "scratch"
    assert vs["energy_kwh"] == pytest.approx(-1.5) and vs["energy_pct"] == pytest.approx(-75.0)
    assert vs["co2_pct"] == pytest.approx(-75.0)
    assert vs["accuracy_points"] == pytest.approx(6.0)
    assert rows[0]["vs_scratch"]["energy_pct"] == pytest.approx(0.0)
    assert lora["provenance"]["energy_kwh"].startswith("estimated (cpu-tdp-estimate")
    assert "WORLD 481 g/kWh" in lora["provenance"]["co2_kg"]


def test_without_scratch_no_deltas(bundles):
    rows = compare_bundles(bundles[1:])
    assert all(r["vs_scratch"] is None for r in rows)


def test_markdown_and_rich_table(bundles):
    rows = compare_bundles(bundles)
    md = comparison_markdown(rows)
    assert md.count("\n|") >= 4 and "-75.0 %" in md and "estimated" in md
    table = render_comparison_table(rows)
    assert table.row_count == 3


def test_missing_file_names_bundle_and_file(bundles):
    (bundles[1] / "training_carbon.json").unlink()
    with pytest.raises(BundleError, match=r"lora.*training_carbon\.json"):
        compare_bundles(bundles)


def test_missing_params_key(bundles):
    manifest = json.loads((bundles[2] / "manifest.json").read_text())
    del manifest["params"]
    (bundles[2] / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"probe.*manifest\.json.*params"):
        compare_bundles(bundles)


def test_cli_compare_writes_outputs(bundles, tmp_path):
    from hackforge_edge.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", *map(str, bundles), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "lora" in result.output
    assert len(json.loads((out / "compare.json").read_text())["rows"]) == 3
    assert (out / "compare.md").read_text().startswith("| bundle")


def test_cli_compare_missing_bundle_is_one_line_error(tmp_path):
    from hackforge_edge.cli import main

    assert main(["compare", str(tmp_path / "nope")]) == 2


def test_a_cached_source_model_is_called_out(tmp_path):
    hit = [{"phase": "source_pretrain", "kind": "cache-hit", "energy_j": 0.0},
           {"phase": "target_transfer", "kind": "estimated", "energy_j": 10.0}]
    paid = [{"phase": "source_pretrain", "kind": "estimated", "energy_j": 900.0}]
    rows = compare_bundles([make_bundle(tmp_path, "scratch", "scratch", 0.7, 10, 2.0),
                            make_bundle(tmp_path, "lora", "lora", 0.9, 1, 0.5, phases=hit),
                            make_bundle(tmp_path, "lora2", "lora", 0.9, 1, 3.0, phases=paid)])
    assert [r["source_pretrain"] for r in rows] == ["none", "cache hit (not counted)", "counted"]
    assert "not in that row's total" in comparison_markdown(rows)


def test_energy_including_the_reused_source_pretraining(tmp_path):
    hit = [{"phase": "source_pretrain", "kind": "cache-hit", "energy_j": 0.0}]
    b = make_bundle(tmp_path, "lora", "lora", 0.9, 1, 0.5, phases=hit)
    carbon = json.loads((b / "training_carbon.json").read_text())
    carbon["source_pretrain_one_off"] = {"energy_j": 3.6e6, "kind": "estimated", "method": "x"}
    (b / "training_carbon.json").write_text(json.dumps(carbon))
    (row,) = compare_bundles([b])
    assert row["energy_kwh_incl_source"] == pytest.approx(1.5)
    unknown = make_bundle(tmp_path, "lora2", "lora", 0.9, 1, 0.5, phases=hit)
    assert compare_bundles([unknown])[0]["energy_kwh_incl_source"] is None  # not recorded: unknown


def test_source_retention_columns(tmp_path, bundles):
    ewc = make_bundle(tmp_path, "ewc", "ewc", 0.85, 11_000_000, 2.1)
    metrics = json.loads((ewc / "metrics.json").read_text())
    metrics["source_retention"] = {"accuracy_before": 0.9, "accuracy_after": 0.81, "retention": 0.9}
    (ewc / "metrics.json").write_text(json.dumps(metrics))
    rows = compare_bundles([bundles[1], ewc])
    assert rows[0]["source_accuracy_after"] is None  # no source data recorded: n/a, not zero
    assert (rows[1]["source_accuracy_before"], rows[1]["source_accuracy_after"],
            rows[1]["source_retention"]) == (0.9, 0.81, 0.9)
    md = comparison_markdown(rows)
    assert "source retention" in md and "| 0.9000 | 0.8100 | 0.900 |" in md
