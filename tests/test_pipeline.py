"""`hf-edge train-and-export`: bad input fails in one line and writes nothing that looks
complete; a tiny run through the real CLI produces a complete, validated bundle."""

from __future__ import annotations

import json

import pytest

from hackforge_edge.cli import main

TINY = ["--model", "tinycnn", "--weights", "none", "--epochs", "1", "--image-size", "32",
        "--batch-size", "16", "--quiet"]


def _run(capsys, args):
    code = main(["train-and-export", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchnet"], "unknown model 'nosuchnet' (valid:"),
    (["--strategy", "magic"], "unknown strategy 'magic' (valid:"),
    (["--data-fraction", "0"], "--data-fraction must be in (0, 1]"),
    (["--data-fraction", "1.5"], "--data-fraction must be in (0, 1]"),
    (["--data", "/nonexistent/dataset"], "no such directory"),
    (["--variants", "int4"], "unknown variant"),
    (["--region", "Atlantis"], "Atlantis"),
    (["--max-latency-ms", "-5"], "max_latency_ms"),
    (["--profile", "jetson-tx9"], "unknown profile 'jetson-tx9'"),
    (["--profile", "/nonexistent/device.yaml"], "not found"),
    (["--lora-rank", "0"], "--lora-rank"),
    (["--lora-alpha", "-1"], "--lora-alpha"),
    (["--weights", "/nonexistent/weights.pt"], "--weights must be one of"),
    (["--image-size", "4"], "--image-size"),
    (["--epochs", "0"], "--epochs"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code, _, err = _run(capsys, [*TINY, "--out", str(out), *args])
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert not out.exists()


def test_existing_out_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = _run(capsys, [*TINY, "--out", str(out)])
    assert code != 0 and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "precious"


def test_interrupt_during_training_leaves_no_manifest(tmp_path, capsys, monkeypatch):
    import hackforge_edge.training.loop as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    out = tmp_path / "run"
    code, _, _ = _run(capsys, [*TINY, "--out", str(out), "--no-profile"])
    assert code != 0
    assert out.is_dir() and not (out / "manifest.json").exists()


def test_tiny_end_to_end_bundle(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, [*TINY, "--strategy", "finetune", "--out", str(out),
                                      "--profile", "local", "--profile", "jetson-orin-nano-8gb",
                                      "--variants", "fp16,int8"])
    assert code == 0, err
    for name in ("manifest.json", "model.onnx", "labels.json", "preprocess.json", "metrics.json",
                 "export_validation.json", "training_carbon.json", "emissions.csv",
                 "profile.json", "feasibility.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    # every file the pipeline wrote reads back through the verifying reader and its typed model
    from hackforge_edge.bundle import Bundle
    from hackforge_edge.bundle.registry import available
    opened = Bundle.open(out)
    read = [filename for filename, cls in available()[0].items()
            if opened.has(filename) and opened.read(cls).FILENAME == filename]
    # the files every run writes; gate.json, tasks.json, ... only appear in some runs
    assert set(read) >= {"manifest.json", "metrics.json", "export_validation.json",
                         "training_carbon.json", "profile.json", "feasibility.json", "report.json"}
    assert opened.manifest.weights.kind == "none" and opened.manifest.weights.base_sha256 is None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"] == "tinycnn" and manifest["exporter"] in ("dynamo", "legacy")
    assert set(manifest["artifacts"]) >= {"model.onnx", "metrics.json", "profile.json"}
    # every artifact hashed in the manifest matches the file on disk
    from hackforge_edge.bundle import sha256_file
    for rel, entry in manifest["artifacts"].items():
        assert sha256_file(out / rel) == entry["sha256"], rel
    validation = json.loads((out / "export_validation.json").read_text())
    assert validation["passed"] is True
    assert all(o["max_abs_diff"] <= 1e-4 for o in validation["outputs"].values())
    for name in ("fp16", "int8"):  # each variant judged on held-out target data
        assert (out / f"model.{name}.onnx").is_file() and name in manifest["config"]["variants"]
        judged = validation["variants"][name]["validation"]
        assert judged["status"] in ("accepted", "rejected") and judged["accuracy"]["n_samples"] > 0
    carbon = json.loads((out / "training_carbon.json").read_text())
    # no RAPL / GPU on CI machines: the energy must be labelled, never silently "measured"
    assert carbon["kind"] in ("estimated", "measured", "mixed")
    assert {p["phase"] for p in carbon["phases"]} >= {"target_transfer", "export", "validation",
                                                      "profiling"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["kind"] == "measured"
    # downstream readers understand what the pipeline wrote
    from hackforge_edge.energy.compare import compare_bundles
    row = compare_bundles([out])[0]
    assert row["trainable_params"] == manifest["params"]["trainable_params"] > 0
    assert row["accuracy"] == metrics["accuracy"] and row["energy_kwh"] is not None


def test_unusable_image_folder_fails_before_anything_is_written(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "data"
    (root / "benign").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "benign" / "a.png")  # one class only
    out = tmp_path / "run"
    code, _, err = _run(capsys, [*TINY, "--data", str(root), "--out", str(out)])
    assert code != 0 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_cached_source_model_still_reports_its_one_off_energy(tmp_path, capsys):
    args = [*TINY, "--weights", "source", "--strategy", "frozen", "--no-profile"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(capsys, [*args, "--out", str(first)])[0] == 0
    assert _run(capsys, [*args, "--out", str(second)])[0] == 0
    one = json.loads((first / "training_carbon.json").read_text())
    two = json.loads((second / "training_carbon.json").read_text())
    paid = {p["phase"]: p for p in one["phases"]}["source_pretrain"]
    assert paid["kind"] != "cache-hit" and paid["energy_j"] > 0
    assert {p["phase"]: p for p in two["phases"]}["source_pretrain"]["kind"] == "cache-hit"
    assert two["source_pretrain_one_off"]["energy_j"] == pytest.approx(paid["energy_j"])
    assert two["source_pretrain_one_off"]["bundle"] == "first"
    # both start from the same cached source model: the same base-weights hash in each manifest
    bases = [json.loads((d / "manifest.json").read_text())["weights"] for d in (first, second)]
    assert bases[0]["kind"] == "source" and len(bases[0]["base_sha256"]) == 64
    assert bases[0]["base_sha256"] == bases[1]["base_sha256"]
