"""The report leads with the answer: recommendation, cost, energy, CO2, accuracy, runners-up first."""

import json

import bundle_fixtures as fx
import pytest
from test_cli_profile import FAST, _export, _out, invoke
from test_precision import _bundle_with_variants

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_report_first_screen_is_the_recommendation(tmp_path):
    model = _export(tmp_path / "m.onnx")
    b, _ = _bundle_with_variants(model, tmp_path / "run")
    fx.training_carbon(0.002).write(b)
    fx.finish(b)
    r = invoke("profile", b, "-p", "raspberry-pi-5", "-p", "nvidia-t4", "-p", "jetson-orin-nano-8gb",
               *FAST, "--requirements", "examples/requirements-hospital.yaml", "--default-mode")
    assert r.exit_code == 0, _out(r)
    feas = json.loads((b / "feasibility.json").read_text())
    rep = json.loads((b / "report.json").read_text())
    assert rep["schema_version"] == 3
    a = rep["answer"]
    first = feas["ranking"][0]
    assert (a["recommended"]["profile"], a["recommended"]["precision"]) == (first["profile"], first["precision"])
    assert a["recommended"]["cost_per_million"] == pytest.approx(first["cost_per_million_inferences"])
    assert [q["profile"] for q in a["runners_up"]] == [x["profile"] for x in feas["ranking"][1:4]]
    assert a["training_co2_kg"] is not None and a["model_accuracy"] == pytest.approx(0.9)
    assert a["recommended"]["energy_kwh_per_year"] > 0 and a["recommended"]["co2_kg_per_year"] > 0
    html = (b / "report.html").read_text()
    order = [html.index(s) for s in ("Recommendation for the workload", "Runner-up", "Verdict per target",
                                     'id="appendix"', "Legend: kinds of numbers")]
    assert order == sorted(order)
    assert "per million inferences" in html[:html.index("Verdict per target")]
    titles = [t["title"] for t in rep["sections"]]
    assert titles[:2] == ["Verdict per target", "Best feasible precision per target"]
    md = (b / "report.md").read_text()
    assert md.index("## Recommendation") < md.index("## Verdict per target") < md.index("## Legend")
