"""`hf-edge profile` and `hf-edge report` through Typer's CliRunner on a tiny 2-layer CNN."""

import json
import re

import bundle_fixtures as fx
import pytest
from typer.testing import CliRunner

from hackforge_edge.cli import app

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy torch.onnx exporter

FAST = ["--batch-sizes", "1,2", "--runs", "2", "--warmup", "1"]


def _export(path, dynamic_hw=False):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": axes, "logits": {0: "batch"}},
                      dynamo=False)
    return path


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _out(result):
    # Click >= 8.2 interleaves stderr into .output; older Click keeps it apart
    text = result.output
    try:
        err = result.stderr
    except (ValueError, AttributeError):
        err = ""
    return text if err and err in text else text + err


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_profile_model_file(onnx_model, tmp_path):
    r = invoke("profile", onnx_model, "--profile", "local", "--profile", "nvidia-t4", *FAST,
               "--max-latency-ms", "1000", "--items-per-day", "1000", "--hours-per-day", "8",
               "--region", "FRA", "--out", tmp_path / "o")
    assert r.exit_code == 0, _out(r)
    feas = json.loads((tmp_path / "o" / "feasibility.json").read_text())
    prof = json.loads((tmp_path / "o" / "profile.json").read_text())
    assert prof["projections"] and {e["profile"] for e in feas["entries"]} == {"local", "nvidia-t4", "this-machine"}
    assert all(e["verdict"] in ("PASS", "MARGINAL", "FAIL") for e in feas["entries"])
    assert feas["grid"]["region"] == "FRA" and feas["requirements"]["operating_hours_per_day"] == 8
    assert all(e["workload"]["devices_needed"] >= 1 for e in feas["entries"])
    assert not (tmp_path / "o" / "report.html").exists()          # a bare model: no report unless --report
    assert re.search(r"PASS|MARGINAL|FAIL", r.output)


def test_profile_bundle_writes_report_and_report_regenerates(onnx_model, tmp_path):
    b = tmp_path / "run"
    b.mkdir()
    (b / "model.onnx").write_bytes(onnx_model.read_bytes())
    fx.metrics(0.8).write(b)
    fx.finish(b)  # a complete bundle: profile verifies it, then re-hashes what it wrote
    r = invoke("profile", b, "--profile", "raspberry-pi-5", *FAST, "--max-latency-ms", "100")
    assert r.exit_code == 0, _out(r)
    amended = json.loads((b / "manifest.json").read_text())["amended"]
    assert amended[0]["command"] == "hf-edge profile" and "profile.json" in amended[0]["files"]
    for name in ("profile.json", "feasibility.json", "report.json", "report.md", "report.html",
                 "figures/latency.png", "figures/memory.png"):
        assert (b / name).is_file(), name
    (b / "report.html").unlink()  # what report rewrites may be missing or changed
    r = invoke("report", b)
    assert r.exit_code == 0, _out(r)
    (b / "metrics.json").write_text((b / "metrics.json").read_text() + " ")  # what it reads may not
    r = invoke("report", b)
    assert r.exit_code == 2 and "metrics.json: sha256 differs from the manifest" in _out(r)
    r = invoke("report", b, "--allow-incomplete")
    assert r.exit_code == 0, _out(r)
    html = (b / "report.html").read_text()
    assert "data:image/png;base64," in html and "Model quality" in html
    # new requirements: the stored profile is judged again (no re-measurement), then reported
    (b / "metrics.json").write_text((b / "metrics.json").read_text()[:-1])   # the file as recorded
    (tmp_path / "req.yaml").write_text("max_latency_ms: 0.000001\n")
    r = invoke("report", b, "--requirements", tmp_path / "req.yaml")
    assert r.exit_code == 0, _out(r)
    from hackforge_edge.feasibility.artifact import Feasibility
    feas = Feasibility.read(b)
    assert feas.requirements.max_latency_ms == 1e-6 and {e.verdict for e in feas.entries} == {"FAIL"}
    assert "FAIL" in (b / "report.md").read_text()


def test_profile_and_report_library_call(onnx_model, tmp_path):
    from hackforge_edge.feasibility.requirements import Requirements
    from hackforge_edge.recipes.profile import profile_and_report

    b = tmp_path / "run"
    b.mkdir()
    (b / "model.onnx").write_bytes(onnx_model.read_bytes())
    fx.finish(b)
    out = profile_and_report(b, ["nvidia-t4"], Requirements(max_latency_ms=100, items_per_day=500),
                             batch_sizes=(1,), runs=2, warmup=0)
    assert out.feasibility.entries and set(out.paths) >= {"profile", "feasibility", "json", "md", "html"}
    assert (b / "report.html").is_file() and (b / "figures" / "latency.png").is_file()


def test_report_without_profile_says_run_profile(tmp_path):
    fx.finish(tmp_path)
    r = invoke("report", tmp_path)
    assert r.exit_code != 0 and "hf-edge profile" in _out(r)


@pytest.mark.parametrize("case", ["not-onnx", "truncated", "unknown-profile", "impossible", "bad-batch"])
def test_bad_input_one_line_errors(case, onnx_model, tmp_path):
    target, extra, expect = onnx_model, [], ""
    if case == "not-onnx":
        target = tmp_path / "model.txt"
        target.write_text("hello")
        expect = ".onnx"
    elif case == "truncated":
        target = tmp_path / "cut.onnx"
        target.write_bytes(onnx_model.read_bytes()[:40])
        expect = "ONNX"
    elif case == "unknown-profile":
        extra, expect = ["--profile", "tpu-v9"], "known:"
    elif case == "impossible":
        extra, expect = ["--max-latency-ms", "-3"], "max_latency_ms"
    elif case == "bad-batch":
        extra, expect = ["--batch-sizes", "1,zero"], "--batch-sizes"
    r = invoke("profile", target, *extra, "--out", tmp_path / "o")
    text = _out(r)
    assert r.exit_code == 2, text
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0], text
    assert not (tmp_path / "o" / "feasibility.json").exists()


def test_uninferable_input_asks_for_input_shape(tmp_path):
    model = _export(tmp_path / "dyn.onnx", dynamic_hw=True)
    r = invoke("profile", model, "--profile", "local", *FAST, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--input-shape" in _out(r)
