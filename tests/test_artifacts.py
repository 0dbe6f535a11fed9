"""Typed bundle files: every registered artifact publishes a JSON Schema, a file of an unknown
schema version or shape is refused in one line, and the base-weights hash is stable."""

from __future__ import annotations

import json

import bundle_fixtures as fx
import pytest

from hackforge_edge.bundle.registry import ARTIFACTS, available, json_schema
from hackforge_edge.cli import main
from hackforge_edge.errors import BundleError


def test_every_registered_artifact_publishes_its_schema(tmp_path, capsys):
    found, missing = available()
    # A2's profile/feasibility/report models may not be in this branch yet; ours must be
    assert {"manifest.json", "metrics.json", "export_validation.json", "training_carbon.json"} <= set(found)
    assert set(found) | set(missing) == set(ARTIFACTS)
    assert main(["schema", "--out", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    for filename, cls in found.items():
        assert cls.FILENAME == filename
        schema = json.loads((tmp_path / f"{filename}.schema.json").read_text())
        assert schema["properties"]["schema_version"]["const"] == cls.supported_version()
        assert schema["additionalProperties"] is False
        assert f"{filename:<24} schema_version {cls.supported_version()}" in listing
    for filename in missing:
        assert f"{filename:<24} (no schema:" in listing
    assert main(["schema", "metrics.json"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == "hackforge-edge/metrics.json/v1"
    assert main(["schema", "nope.json"]) == 2
    assert "unknown bundle file 'nope.json'" in capsys.readouterr().err


@pytest.mark.parametrize("make", [fx.metrics, fx.training_carbon, fx.export_validation])
def test_round_trip_and_unknown_version_is_one_clear_line(tmp_path, make):
    doc = make()
    cls = type(doc)
    path = doc.write(tmp_path)
    assert cls.read(path) == doc
    # the written file validates against the published JSON Schema
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(path.read_text()), json_schema(cls))
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError) as err:
        cls.read(path)
    msg = str(err.value)
    assert "\n" not in msg and f"{cls.FILENAME}: schema version 99 is not supported" in msg


def test_a_shape_the_pipeline_never_writes_is_refused(tmp_path):
    # the shapes old hand-written fixtures used: labels instead of class_names, outputs as a list
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"schema_version": 1, "accuracy": 0.9, "labels": ["a", "b"]}))
    with pytest.raises(BundleError, match="does not match the Metrics schema"):
        fx.Metrics.read(tmp_path)
    data = fx.export_validation().to_json()
    data["outputs"] = [{"name": "logits", "max_abs_diff": 1e-6}]
    with pytest.raises(BundleError, match="ExportValidation schema at outputs"):
        fx.ExportValidation.from_json(data)


def test_state_dict_hash_is_stable_and_sensitive():
    torch = pytest.importorskip("torch")
    from hackforge_edge.models.registry import create_model, reset_classifier
    from hackforge_edge.models.weights_hash import model_backbone_sha256 as backbone_sha256
    from hackforge_edge.models.weights_hash import state_dict_sha256

    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)}
    h = state_dict_sha256(a)
    assert h == state_dict_sha256(dict(reversed(list(a.items()))))  # order does not matter
    assert h == state_dict_sha256({k: v.clone() for k, v in a.items()})
    assert h != state_dict_sha256({**a, "w": a["w"].reshape(3, 2)})  # shape is part of identity
    bumped = a["w"].clone()
    bumped[0, 0] += 1e-6
    assert h != state_dict_sha256({**a, "w": bumped})
    # the backbone hash ignores the head: fine-tunes of one base with different heads agree
    m1 = create_model("tinycnn", 2, seed=0)
    m2 = create_model("tinycnn", 2, seed=0)
    reset_classifier(m2, 3, seed=5)
    assert backbone_sha256(m1)[0] == backbone_sha256(m2)[0]
    assert backbone_sha256(m1)[0] != backbone_sha256(create_model("tinycnn", 2, seed=1))[0]
