"""The run bundle: atomic writes, refusing to overwrite, manifest written last with hashes."""

import json
import math

import pytest

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError, ModelFileError


def test_atomic_write_json_roundtrip_and_no_temp_left(tmp_path):
    p = bundle.atomic_write_json(tmp_path / "a" / "x.json", {"k": [1, 2], "v": 1.5})
    assert json.loads(p.read_text()) == {"k": [1, 2], "v": 1.5}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_atomic_write_refuses_nan_and_keeps_old_file(tmp_path):
    p = bundle.atomic_write_json(tmp_path / "m.json", {"ok": 1})
    with pytest.raises(ValueError):
        bundle.atomic_write_json(p, {"bad": math.nan})
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


def test_prepare_out_dir_refuses_non_empty_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    bundle.prepare_out_dir(out)
    (out / "manifest.json").write_text("{}")
    (out / "model.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="--overwrite"):
        bundle.prepare_out_dir(out)
    bundle.prepare_out_dir(out, overwrite=True)
    # the old manifest goes first: the directory reads as incomplete until the new run ends
    assert not (out / "manifest.json").exists()
    assert (out / "model.onnx").exists()


def test_prepare_out_dir_refuses_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(BundleError, match="not a directory"):
        bundle.prepare_out_dir(f)


def test_manifest_hashes_every_artifact(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"abc")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "lat.png").write_bytes(b"png")
    bundle.write_manifest(tmp_path, config={"model": "m"}, seed=3, started_at=bundle.utc_now(),
                          extra={"exporter": "dynamo"})
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["seed"] == 3 and m["exporter"] == "dynamo" and m["config"] == {"model": "m"}
    assert set(m["artifacts"]) == {"model.onnx", "figures/lat.png"}
    assert m["artifacts"]["model.onnx"]["sha256"] == bundle.sha256_file(tmp_path / "model.onnx")
    assert m["versions"]["python"]


def test_open_model_bundle_or_bare_onnx(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        bundle.open_model(tmp_path / "nope.onnx")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(ModelFileError, match=".onnx"):
        bundle.open_model(txt)
    bare = tmp_path / "net.onnx"
    bare.write_bytes(b"x")
    assert bundle.open_model(bare).bundle is None  # a bare model: nothing to verify
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.onnx").write_bytes(b"x")
    (run / "labels.json").write_text('["a", "b"]')
    # a model.onnx among bundle files without a manifest is an interrupted run, by any path
    for target in (run, run / "model.onnx"):
        with pytest.raises(BundleError, match="incomplete bundle .*re-run, or pass --allow-incomplete"):
            bundle.open_model(target)
    ref = bundle.open_model(run, allow_incomplete=True)
    assert ref.bundle_dir == run and not ref.bundle.verified and ref.bundle.manifest is None
    bundle.write_manifest(run, config={}, seed=0, started_at=bundle.utc_now())
    ref = bundle.open_model(run / "model.onnx")
    assert ref.bundle.verified and ref.bundle.manifest.sha256_of("model.onnx") == bundle.sha256_file(run / "model.onnx")


def test_open_refuses_a_changed_or_missing_artifact(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"abc")
    (tmp_path / "labels.json").write_text("[]")
    bundle.write_manifest(tmp_path, config={}, seed=0, started_at=bundle.utc_now())
    (tmp_path / "model.onnx").write_bytes(b"abd")
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 differs from the manifest"):
        bundle.Bundle.open(tmp_path)
    opened = bundle.Bundle.open(tmp_path, allow_incomplete=True)
    assert not opened.verified and "sha256 differs" in opened.problems[0]
    (tmp_path / "labels.json").unlink()
    with pytest.raises(BundleError, match=r"labels\.json: listed in the manifest but missing"):
        bundle.Bundle.open(tmp_path)


def test_refresh_manifest_records_amendments(tmp_path):
    (tmp_path / "report.md").write_text("v1")
    assert bundle.refresh_manifest(tmp_path, command="x", rewritten=["report.md"]) is None
    assert not (tmp_path / "manifest.json").exists()  # incomplete stays incomplete
    bundle.write_manifest(tmp_path, config={}, seed=0, started_at=bundle.utc_now())
    (tmp_path / "report.md").write_text("v2")
    bundle.refresh_manifest(tmp_path, command="hf-edge report", rewritten=[tmp_path / "report.md"])
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["artifacts"]["report.md"]["sha256"] == bundle.sha256_file(tmp_path / "report.md")
    assert m["amended"][0]["command"] == "hf-edge report" and m["amended"][0]["files"] == ["report.md"]
    bundle.Bundle.open(tmp_path)  # verifies again


def test_refresh_never_blesses_a_file_the_command_did_not_write(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"abc")
    (tmp_path / "report.md").write_text("v1")
    bundle.write_manifest(tmp_path, config={}, seed=0, started_at=bundle.utc_now())
    opened = bundle.Bundle.open(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"evil")  # swapped while the command ran
    (tmp_path / "report.md").write_text("v2")
    before = (tmp_path / "manifest.json").read_text()
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 differs"):
        opened.refresh_manifest(command="hf-edge report", rewritten=["report.md"])
    assert (tmp_path / "manifest.json").read_text() == before
    # a bundle that did not verify when opened keeps its manifest as it is
    unverified = bundle.Bundle.open(tmp_path, allow_incomplete=True)
    assert unverified.refresh_manifest(command="x", rewritten=["model.onnx"]) is None
    assert (tmp_path / "manifest.json").read_text() == before
