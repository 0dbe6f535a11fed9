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


def test_resolve_model(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        bundle.resolve_model(tmp_path / "nope.onnx")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(ModelFileError, match=".onnx"):
        bundle.resolve_model(txt)
    with pytest.raises(BundleError, match="not a bundle"):
        bundle.resolve_model(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    ref = bundle.resolve_model(tmp_path)
    assert ref.bundle_dir == tmp_path and ref.sidecar("labels.json") is None
    with pytest.raises(BundleError, match="incomplete"):
        bundle.resolve_model(tmp_path, require_manifest=True)


def test_refresh_manifest_records_amendments(tmp_path):
    (tmp_path / "report.md").write_text("v1")
    assert bundle.refresh_manifest(tmp_path, command="x") is None  # incomplete stays incomplete
    assert not (tmp_path / "manifest.json").exists()
    bundle.write_manifest(tmp_path, config={}, seed=0, started_at=bundle.utc_now())
    (tmp_path / "report.md").write_text("v2")
    bundle.refresh_manifest(tmp_path, command="hf-edge report")
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["artifacts"]["report.md"]["sha256"] == bundle.sha256_file(tmp_path / "report.md")
    assert m["amended"][0]["command"] == "hf-edge report" and m["amended"][0]["files"] == ["report.md"]
