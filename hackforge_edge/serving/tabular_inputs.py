"""JSON rows -> the float32 feature matrix of a tabular bundle, and its outputs -> predictions.

``{"rows": [{"mean radius": 14.1, ...}, ...]}`` (by name, any order) or ``{"rows": [[...], ...]}``
(in the bundle's feature order). Missing, extra, non-numeric or non-finite features are a 422
naming them; the standardisation is inside the model, so raw values in the recorded units go in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hackforge_edge.serving.inputs import RequestError, finite_or_none
from hackforge_edge.serving.settings import ServeSettings


@dataclass(frozen=True)
class TabularSpec:
    """What preprocess.json (kind "tabular") says about the model's input."""

    input_name: str
    features: tuple[str, ...]
    units: tuple[str, ...]
    problem: str
    class_names: tuple[str, ...] | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TabularSpec":
        feats = d["features"]
        names = tuple(str(f["name"]) for f in feats)
        return cls(input_name=str(d.get("input_name", "input")), features=names,
                   units=tuple(str(f.get("unit", "")) for f in feats), problem=str(d["problem"]),
                   class_names=tuple(d["class_names"]) if d.get("class_names") else None)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "tabular", "input_name": self.input_name, "problem": self.problem,
                "features": [{"name": n, "unit": u} for n, u in zip(self.features, self.units)],
                "class_names": list(self.class_names) if self.class_names else None}


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestError(f"{where} must be a number, got {type(v).__name__}", 422, "invalid_feature")
    if not math.isfinite(v):
        raise RequestError(f"{where} is not finite", 422, "nan_not_allowed")
    return float(v)


def rows_to_batch(rows: Any, spec: TabularSpec, settings: ServeSettings) -> np.ndarray:
    if not isinstance(rows, list) or not rows:
        raise RequestError('"rows" must be a non-empty list of objects or arrays', 422, "invalid_payload")
    if len(rows) > settings.max_batch:
        raise RequestError(f"{len(rows)} rows; the maximum batch is {settings.max_batch}", 413,
                           "batch_too_large")
    d = len(spec.features)
    X = np.empty((len(rows), d), np.float32)
    known = set(spec.features)
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            missing = [f for f in spec.features if f not in row]
            extra = sorted(set(row) - known)
            if missing or extra:
                parts = ([f"missing feature(s) {', '.join(map(repr, missing[:5]))}"
                          + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")] if missing else []) + \
                        ([f"unknown feature(s) {', '.join(map(repr, extra[:5]))}"] if extra else [])
                raise RequestError(f"rows[{i}]: " + "; ".join(parts), 422, "invalid_features")
            X[i] = [_number(row[f], f"rows[{i}][{f!r}]") for f in spec.features]
        elif isinstance(row, list):
            if len(row) != d:
                raise RequestError(f"rows[{i}] has {len(row)} values; the model takes {d} features "
                                   f"in this order: {', '.join(spec.features)}", 422, "invalid_features")
            X[i] = [_number(v, f"rows[{i}][{j}] ({spec.features[j]})") for j, v in enumerate(row)]
        else:
            raise RequestError(f"rows[{i}] must be an object or an array", 422, "invalid_payload")
    return X


def format_tabular(outs: Sequence[np.ndarray], names: Sequence[str], spec: TabularSpec) -> dict[str, Any]:
    """skl2onnx outputs -> predictions: label + probabilities, or a value."""
    by_name = dict(zip(names, outs))
    if spec.problem == "regression":
        values = np.asarray(by_name.get("variable", outs[0]), np.float64).reshape(-1)
        return {"predictions": [{"value": finite_or_none(v)} for v in values]}
    probs = np.asarray(by_name["probabilities"], np.float64)
    labels = spec.class_names or tuple(str(i) for i in range(probs.shape[1]))
    preds = []
    for row in probs:
        idx = int(np.argmax(row))
        preds.append({"label": labels[idx], "index": idx,
                      "probabilities": {labels[k]: finite_or_none(p) for k, p in enumerate(row)}})
    return {"predictions": preds}
