"""Strategy comparison on hand-made bundles, and ``hf-edge compare``."""

from __future__ import annotations

import json
from pathlib import Path

import bundle_fixtures as fx
import pytest
from typer.testing import CliRunner

from hackforge_edge.energy.compare import compare_bundles, comparison_markdown, render_comparison_table
from hackforge_edge.errors import BundleError


def make_bundle(root: Path, name: str, strategy: str, acc: float, trainable: int, kwh: float,
                kind: str = "estimated", phases: list | None = None, **carbon_extra) -> Path:
    """A complete bundle: metrics and training carbon from the real producers, manifest last."""
    d = root / name
    d.mkdir(parents=True)
    fx.metrics(acc).write(d)
    fx.training_carbon(kwh, kind=kind, phases=phases, **carbon_extra).write(d)
    return fx.finish(d, model="resnet18", strategy=strategy,
                     params=fx.params(trainable, strategy=strategy))


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


def test_missing_params_key(tmp_path):
    b = make_bundle(tmp_path, "probe", "linear_probe", 0.83, 1_000, 0.25)
    fx.finish(b, model="resnet18", strategy="linear_probe")  # a manifest without params
    with pytest.raises(BundleError, match=r"probe.*manifest\.json.*params"):
        compare_bundles([b])


def test_a_changed_file_is_refused_unless_allowed(bundles):
    fx.flip_one_byte(bundles[1] / "metrics.json", offset=0)  # "{" -> "z": also invalid JSON
    with pytest.raises(BundleError, match=r"lora/metrics\.json: sha256 differs from the manifest"):
        compare_bundles(bundles)


def test_cli_compare_writes_outputs(bundles, tmp_path):
    from hackforge_edge.cli import app

    out = tmp_path / "cmp"
    # a wide terminal, so Rich never elides a column (the width differs under pytest-xdist)
    result = CliRunner().invoke(app, ["compare", *map(str, bundles), "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "lora" in result.output
    assert len(json.loads((out / "compare.json").read_text())["rows"]) == 3
    assert (out / "compare.md").read_text().startswith("| bundle")


def test_cli_compare_missing_bundle_is_one_line_error(tmp_path):
    from hackforge_edge.cli import main

    assert main(["compare", str(tmp_path / "nope")]) == 2


def test_a_cached_source_model_is_called_out(tmp_path):
    hit = [fx.phase("source_pretrain", 0.0, kind="cache-hit"), fx.phase("target_transfer", 10.0)]
    paid = [fx.phase("source_pretrain", 900.0)]
    rows = compare_bundles([make_bundle(tmp_path, "scratch", "scratch", 0.7, 10, 2.0),
                            make_bundle(tmp_path, "lora", "lora", 0.9, 1, 0.5, phases=hit),
                            make_bundle(tmp_path, "lora2", "lora", 0.9, 1, 3.0, phases=paid)])
    assert [r["source_pretrain"] for r in rows] == ["none", "cache hit (not counted)", "counted"]
    assert "not in that row's total" in comparison_markdown(rows)


def test_energy_including_the_reused_source_pretraining(tmp_path):
    hit = [fx.phase("source_pretrain", 0.0, kind="cache-hit"), fx.phase("target_transfer", 0.5 * 3.6e6)]
    one_off = {"energy_j": 3.6e6, "kind": "estimated", "method": "cpu-tdp-estimate", "duration_s": 100.0}
    b = make_bundle(tmp_path, "lora", "lora", 0.9, 1, 0.5, phases=hit, source_pretrain_one_off=one_off)
    (row,) = compare_bundles([b])
    assert row["energy_kwh_incl_source"] == pytest.approx(1.5)
    unknown = make_bundle(tmp_path, "lora2", "lora", 0.9, 1, 0.5, phases=hit)
    assert compare_bundles([unknown])[0]["energy_kwh_incl_source"] is None  # not recorded: unknown


def test_source_retention_columns(tmp_path, bundles):
    d = tmp_path / "ewc"
    d.mkdir()
    fx.metrics(0.85).model_copy(update={"source_retention": {
        "accuracy_before": 0.9, "accuracy_after": 0.81, "retention": 0.9}}).write(d)
    fx.training_carbon(2.1).write(d)
    ewc = fx.finish(d, model="resnet18", strategy="ewc", params=fx.params(11_000_000, strategy="ewc"))
    rows = compare_bundles([bundles[1], ewc])
    assert rows[0]["source_accuracy_after"] is None  # no source data recorded: n/a, not zero
    assert (rows[1]["source_accuracy_before"], rows[1]["source_accuracy_after"],
            rows[1]["source_retention"]) == (0.9, 0.81, 0.9)
    md = comparison_markdown(rows)
    assert "source retention" in md and "| 0.9000 | 0.8100 | 0.900 |" in md
