"""The report of a real tiny bundle: three files, figures embedded as base64 PNG, every number
labelled with its kind, and the same report (figures skipped, said so) without matplotlib.

The bundle's files come from the producers the pipeline uses (export + validation, metrics,
training carbon, profile + verdict, manifest), not hand-written JSON.
"""

import base64
import json
import re
import sys

import numpy as np
import pytest

from hackforge_edge.errors import BundleError
from hackforge_edge.report.artifact import Report
from hackforge_edge.report.build import assemble, build_report
from hackforge_edge.report.cells import LEGEND
from hackforge_edge.report.inputs import read_report_inputs
from hackforge_edge.report.render import render_markdown

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy torch.onnx exporter

CLASSES = ["normal", "abnormal"]


def _write_bundle(d):
    from hackforge_edge import bundle
    from hackforge_edge.energy.accounting import training_carbon
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.energy.meter import Measurement
    from hackforge_edge.export import export_onnx, validate_export
    from hackforge_edge.export.artifact import ExportValidation
    from hackforge_edge.feasibility.requirements import Requirements
    from hackforge_edge.recipes.profile import run_profile
    from hackforge_edge.training.artifacts import Metrics
    from hackforge_edge.training.metrics import classification_metrics

    started = bundle.utc_now()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    export = export_onnx(model, torch.randn(2, 3, 16, 16), d / "model.onnx", exporter="legacy")
    validation = validate_export(model, d / "model.onnx", np.random.default_rng(0).standard_normal(
        (3, 3, 16, 16)).astype(np.float32), output_names=["logits"],
        export_input_shapes=export.export_input_shapes)
    ExportValidation(export=export.to_dict(), **validation, variants={}).write(d)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics = classification_metrics([0, 1, 1, 1], probs, class_names=CLASSES)
    Metrics.from_evaluation(metrics, split="test", method="PyTorch model on the test split").write(d)
    grid = resolve_grid("FRA")
    phase = Measurement(name="target_transfer", duration_s=60.0, energy_j={"cpu": 1800.0},
                        energy_j_total=1800.0, avg_power_w=30.0, method="cpu-tdp-estimate",
                        kind="estimated", band=(-0.6, 1.9))
    training_carbon([phase], grid).write(d)
    # the bundle is not finished yet (no manifest): profile it as the pipeline does
    run_profile(bundle.ModelRef(d / "model.onnx", bundle.Bundle.in_progress(d)), ["nvidia-t4", "raspberry-pi-5", "local"],
                Requirements(max_latency_ms=50, items_per_day=10000, region="FRA"),
                batch_sizes=(1, 2), runs=3, warmup=1, report=False, all_modes=False)
    bundle.write_manifest(d, config={"model": "tiny-cnn", "strategy": "full"}, seed=0, started_at=started,
                          extra={"params": {"trainable_params": 156, "total_params": 156}})
    return d


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_EDGE_CACHE", str(tmp_path_factory.mktemp("cache")))
        return _write_bundle(tmp_path_factory.mktemp("run"))


def test_writes_three_files_and_figures(bundle_dir, tmp_path):
    from hackforge_edge.energy.compare import compare_bundles

    paths = build_report(bundle_dir, comparison_rows=compare_bundles([bundle_dir]), out_dir=tmp_path)
    for key in ("json", "md", "html", "figure_latency", "figure_energy", "figure_memory"):
        assert paths[key].is_file(), key
    html = paths["html"].read_text()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "http://" not in html and "https://" not in html          # self-contained
    for kind in LEGEND:
        assert f"kind-{kind}" in html                                  # legend + badges
    for title in ("Strategy comparison", "Confusion matrix", "Per class", "Training carbon",
                  "Export validation", "Run manifest", "Static analysis", "Local measurement"):
        assert title in html, title
    md = paths["md"].read_text()
    assert "[P]" in md and "[E]" in md and "[M]" in md and "[S]" in md
    assert "figures/latency.png" in md and "| abnormal |" in md
    rep = Report.read(paths["json"])                                   # typed, schema-versioned
    assert rep.thresholds.marginal_margin == 0.1 and set(rep.legend) == set(LEGEND)
    assert rep.figures_note is None and rep.figures["memory"] == "figures/memory.png"
    assert set(rep.summary) == {"nvidia-t4", "raspberry-pi-5", "local", "this-machine"}


def test_every_numeric_cell_has_a_kind(bundle_dir):
    inputs = read_report_inputs(bundle_dir)
    rep = assemble(inputs, inputs.feasibility)
    verdicts = rep.sections[0]
    numeric = [c for row in verdicts.rows for c in row[5:] if c.text != "n/a"]
    assert numeric and all(c.kind in LEGEND for c in numeric)
    static = next(t for t in rep.sections if t.title.startswith("Static"))
    assert all(c.kind == "static" for row in static.rows for c in row[1:])
    assert "Legend" in render_markdown(rep)
    # the metrics shown are the ones metrics.json holds, the confusion matrix labelled by class name
    quality = next(t for t in rep.sections if t.title.startswith("Model quality"))
    assert [r[0].text for r in quality.rows][:2] == ["accuracy", "f1"]
    cm = next(t for t in rep.sections if t.title.startswith("Confusion"))
    assert cm.columns[1:] == CLASSES and [c.text for c in cm.rows[1]] == ["abnormal", "1", "2"]


def test_report_without_matplotlib_says_which_extra(bundle_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)               # import matplotlib fails
    paths = build_report(bundle_dir, out_dir=tmp_path)
    assert not any(k.startswith("figure_") for k in paths) and not (tmp_path / "figures").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'hackforge-edge[report]'" in err[0]
    assert "hackforge-edge[report]" in paths["html"].read_text()
    assert "figures not drawn" in paths["md"].read_text()
    assert Report.read(paths["json"]).figures == {}


def test_missing_profile_says_run_profile_first(tmp_path):
    with pytest.raises(BundleError, match="hf-edge profile"):
        build_report(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="run `hf-edge profile"):
        build_report(tmp_path)


def test_a_file_of_another_shape_is_refused(bundle_dir, tmp_path):
    """feasibility.json that does not match its schema is one clear error, not a walk."""
    for name in ("profile.json", "model.onnx"):
        (tmp_path / name).write_bytes((bundle_dir / name).read_bytes())
    feas = json.loads((bundle_dir / "feasibility.json").read_text())
    feas["entries"][0]["checks"]["memory"] = {"verdict": "OK"}
    (tmp_path / "feasibility.json").write_text(json.dumps(feas))
    with pytest.raises(BundleError, match="feasibility.json.*Feasibility schema"):
        build_report(tmp_path)


@pytest.mark.parametrize("cls_path", ["hackforge_edge.profiling.artifact:Profile",
                                      "hackforge_edge.feasibility.artifact:Feasibility",
                                      "hackforge_edge.report.artifact:Report"])
def test_bundle_files_match_their_published_schema(bundle_dir, cls_path):
    import importlib

    module, _, name = cls_path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if cls is Report:    # the bundle holds no report (profiled with report=False): assemble one
        inputs = read_report_inputs(bundle_dir)
        data = json.loads(json.dumps(assemble(inputs, inputs.feasibility).to_json()))
    else:
        data = json.loads((bundle_dir / cls.FILENAME).read_text())
    assert cls.from_json(data).to_json() == data                      # reads back unchanged
    jsonschema = pytest.importorskip("jsonschema")
    schema = cls.model_json_schema(mode="serialization")
    assert schema["additionalProperties"] is False
    jsonschema.validate(data, {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema})
    data["schema_version"] = 99
    with pytest.raises(BundleError, match=f"{cls.FILENAME}: schema version 99 is not supported"):
        cls.from_json(data, source=cls.FILENAME)
