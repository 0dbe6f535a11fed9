"""Precision-aware projection and verdicts: --precision, bundle variants, accuracy-gated recommendation."""

import json

import bundle_fixtures as fx
import numpy as np
import pytest
from test_cli_profile import FAST, _export, _out, invoke

from hackforge_edge.errors import UsageError
from hackforge_edge.profiling.hardware import load_profile
from hackforge_edge.profiling.precision import parse_precisions, resolve_precisions

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_parse_and_resolve():
    assert parse_precisions(None) is None and parse_precisions(" INT8, fp32,int8") == ["int8", "fp32"]
    with pytest.raises(UsageError, match="unknown precision 'fp64'"):
        parse_precisions("fp32,fp64")
    t4, nano, i7 = (load_profile(n) for n in ("nvidia-t4", "jetson-nano", "intel-core-i7-1185g7e"))
    default = resolve_precisions([t4, nano, i7], None)
    assert default == {"nvidia-t4": ["fp32", "fp16", "int8"], "jetson-nano": ["fp32", "fp16"],
                       "intel-core-i7-1185g7e": ["fp32", "int8"]}
    with pytest.raises(UsageError, match="jetson-nano .* cannot run int8"):
        resolve_precisions([t4, nano], ["int8"])


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("m") / "tiny.onnx")


def test_cli_int8_on_t4_projects_int8(onnx_model, tmp_path):
    r = invoke("profile", onnx_model, "--precision", "int8", "--profile", "nvidia-t4", *FAST,
               "--max-latency-ms", "100", "--out", tmp_path)
    assert r.exit_code == 0, _out(r)
    prof = json.loads((tmp_path / "profile.json").read_text())
    assert prof["schema_version"] == 2 and prof["precisions"] == {"nvidia-t4": ["int8"]}
    assert prof["projections"] and {p["precision"] for p in prof["projections"]} == {"int8"}
    feas = json.loads((tmp_path / "feasibility.json").read_text())
    t4 = [e for e in feas["entries"] if e["profile"] == "nvidia-t4"]
    assert {e["precision"] for e in t4} == {"int8"}
    # a bare model has no accuracy at int8: projected, never recommended
    assert not any(e["recommendable"] for e in t4) and "not checked" in t4[0]["recommendation_note"]
    assert "Best feasible precision per target" in r.output


@pytest.mark.parametrize("args, message", [
    (("--precision", "fp64", "--profile", "nvidia-t4"), "unknown precision 'fp64'"),
    (("--precision", "int8", "--profile", "jetson-nano"), "jetson-nano (tensorrt) cannot run int8"),
    (("--max-accuracy-drop", "-1",), "max_accuracy_drop_pp"),
])
def test_cli_bad_precision_one_line(onnx_model, tmp_path, args, message):
    r = invoke("profile", onnx_model, *args, *FAST, "--out", tmp_path)
    out = _out(r).strip()
    assert r.exit_code == 2 and message in out and len(out.splitlines()) == 1, out
    assert not (tmp_path / "profile.json").exists()


def _int8(src, dst, x):
    """Static QDQ INT8 in process (make_int8 runs quant_pre_process in a child interpreter, ~10 s
    here; the subject of these tests is profiling the variant, not building it)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[i:i + 8]} for i in range(0, 32, 8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    size = dst.stat().st_size
    return {"variant": "int8-static", "path": str(dst), "source_path": str(src), "size_bytes": size,
            "source_size_bytes": src.stat().st_size, "size_ratio": size / src.stat().st_size,
            "method": "onnxruntime.quantization.quantize_static (QDQ, MinMax calibration)",
            "settings": {}, "duration_s": 0.1}


def _bundle_with_variants(onnx_model, b):
    from hackforge_edge.export import make_fp16, validate_variant
    from hackforge_edge.export.artifact import ExportValidation

    b.mkdir()
    (b / "model.onnx").write_bytes(onnx_model.read_bytes())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 16, 16)).astype(np.float32)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(b / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x})[0].argmax(1)   # labels the FP32 model gets right: top-1 = 1.0
    variants = {}
    for name in ("fp16", "int8"):
        path = b / f"model.{name}.onnx"
        made = make_fp16(b / "model.onnx", path) if name == "fp16" else _int8(b / "model.onnx", path, x)
        judged = validate_variant(b / "model.onnx", path, x, y, latency_runs=3, latency_warmup=1)
        variants[name] = {"build": made, "validation": judged}
    ev = fx.export_validation().model_dump()
    ExportValidation.model_validate({**ev, "variants": variants}).write(b)
    fx.metrics(0.9).write(b)
    return fx.finish(b), variants


def test_bundle_variants_measured_projected_and_recommended(onnx_model, tmp_path):
    b, variants = _bundle_with_variants(onnx_model, tmp_path / "run")
    r = invoke("profile", b, "--profile", "nvidia-t4", *FAST, "--max-latency-ms", "1000", "--no-report",
               "--max-accuracy-drop", "100")
    assert r.exit_code == 0, _out(r)
    prof = json.loads((b / "profile.json").read_text())
    assert set(prof["variants"]) == {"fp16", "int8"}
    for name in ("fp16", "int8"):
        v = prof["variants"][name]
        assert v["local"]["kind"] == "measured" and v["local"]["path"].endswith(f"model.{name}.onnx")
        assert v["accuracy"]["drop_pp"] == variants[name]["validation"]["accuracy"]["drop_pp"]
    assert prof["accuracy"]["fp32"]["accuracy"] == 1.0
    r = invoke("profile", b, "--profile", "nvidia-t4", "--precision", "int8", *FAST, "--no-report",
               "--out", b.parent / "only-int8")
    assert r.exit_code == 0, _out(r)
    only = json.loads((b.parent / "only-int8" / "profile.json").read_text())
    assert set(only["variants"]) == {"int8"} and {p["precision"] for p in only["projections"]} == {"int8"}
    feas = json.loads((b / "feasibility.json").read_text())
    assert feas["schema_version"] == 3
    here = {e["precision"] for e in feas["entries"] if e["profile"] == "this-machine"}
    assert here == {"fp32", "fp16", "int8"}                     # each variant measured here
    t4 = {e["precision"]: e for e in feas["entries"] if e["profile"] == "nvidia-t4"}
    assert set(t4) == {"fp32", "fp16", "int8"} and all(e["recommendable"] for e in t4.values())
    rec = feas["summary"]["nvidia-t4"]["recommended"]
    best = max(t4.values(), key=lambda e: e["throughput_per_s"])
    assert rec["precision"] == best["precision"] and rec["accuracy"] == t4[rec["precision"]]["accuracy"]["accuracy"]


def test_precision_losing_accuracy_is_never_recommended(onnx_model, tmp_path):
    """Pure verdict: the same profile, with int8 losing 5 pp, recommends int8 only when allowed."""
    from hackforge_edge.feasibility.requirements import Requirements
    from hackforge_edge.feasibility.verdict import evaluate
    from hackforge_edge.profiling.artifact import PrecisionAccuracy
    from hackforge_edge.profiling.profiler import profile_model

    prof = profile_model(onnx_model, ["nvidia-t4"], batch_sizes=(1,), precisions=("fp32", "int8"),
                         measure_local=False)
    prof.accuracy = {
        "fp32": PrecisionAccuracy(precision="fp32", accuracy=0.9, drop_pp=0.0, source="test"),
        "int8": PrecisionAccuracy(precision="int8", accuracy=0.85, fp32_accuracy=0.9, drop_pp=5.0,
                                  source="test")}
    strict = evaluate(prof, Requirements(max_latency_ms=1000))
    assert strict.summary["nvidia-t4"].recommended.precision == "fp32"
    int8 = next(e for e in strict.entries if e.precision == "int8")
    assert int8.verdict != "FAIL" and not int8.recommendable and "5.00 pp" in int8.recommendation_note
    assert _verdict_rows(strict) == {"fp32": "reference", "int8": "-5.00 pp"}
    prof.accuracy.pop("int8")  # no variant judged: the verdict table must not look like an accuracy pass
    assert _verdict_rows(evaluate(prof, Requirements(max_latency_ms=1000)))["int8"] == "not checked"
    prof.accuracy["int8"] = PrecisionAccuracy(precision="int8", accuracy=0.85, fp32_accuracy=0.9, drop_pp=5.0,
                                              source="test")
    loose = evaluate(prof, Requirements(max_latency_ms=1000, max_accuracy_drop_pp=6))
    assert loose.summary["nvidia-t4"].recommended.precision == "int8"   # int8 projects faster on T4
    assert loose.summary["nvidia-t4"].recommended.accuracy == 0.85


def _verdict_rows(feasibility) -> dict[str, str]:
    """precision -> the "top-1 vs fp32" cell of `hf-edge profile`'s verdict table (nvidia-t4)."""
    from rich.console import Console

    from hackforge_edge.cli.profile_cmd import verdict_table

    console = Console(width=400, record=True, color_system=None)
    console.print(verdict_table(feasibility))
    rows = {}
    for line in console.export_text().splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 5 and cells[1].startswith("nvidia-t4"):
            rows[cells[2]] = cells[5]
    return rows
