"""The fitted scikit-learn pipeline (standardisation + linear model) to ONNX with skl2onnx,
validated against scikit-learn on held-out rows.

Classification exports two outputs, ``label`` (int64 [N]) and ``probabilities`` (float32
[N, K], no ZipMap so any onnxruntime client reads a plain tensor); regression exports
``variable`` (float32 [N, 1]). The input is ``input``: float32 [N, n_features] in the bundle's
feature order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hackforge_edge.errors import ExportError

INPUT_NAME = "input"
ATOL, RTOL = 1e-5, 1e-5


def export_pipeline(pipeline, n_features: int, path: Path, problem: str) -> dict[str, Any]:
    """Write ``path`` (model.onnx); returns the ExportInfo fields."""
    import onnx
    import skl2onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    t0 = time.perf_counter()
    options = {id(pipeline.steps[-1][1]): {"zipmap": False}} if problem == "classification" else None
    try:
        onx = convert_sklearn(pipeline, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                              options=options)
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many types for unsupported models
        raise ExportError(f"skl2onnx could not convert the model: {type(exc).__name__}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onx, str(path))
    outputs = [o.name for o in onx.graph.output]
    return {
        "path": str(path.name), "exporter": "skl2onnx", "fallback_reason": None,
        "opset": max(op.version for op in onx.opset_import if op.domain in ("", "ai.onnx")),
        "file_size_bytes": path.stat().st_size, "external_data_path": None,
        "node_count": len(onx.graph.node), "input_names": [INPUT_NAME], "output_names": outputs,
        "dynamic_axes": {INPUT_NAME: {"0": "N"}, **{o: {"0": "N"} for o in outputs}},
        "export_input_shapes": {INPUT_NAME: [1, n_features]}, "torch_version": None,
        "onnx_version": f"{onnx.__version__} (skl2onnx {skl2onnx.__version__})",
        "duration_s": time.perf_counter() - t0, "warnings": [],
    }


def validate_pipeline(pipeline, onnx_path: Path, X: np.ndarray, problem: str) -> dict[str, Any]:
    """onnxruntime vs scikit-learn on rows ``X`` (float64 in, float32 to the model): max abs /
    rel difference per output (probabilities or values) and label agreement."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {INPUT_NAME: X.astype(np.float32)})))
    # the reference sees the same float32-rounded rows, so the difference is the model's alone
    Xr = X.astype(np.float32).astype(np.float64)
    if problem == "classification":
        pairs = {"probabilities": (got["probabilities"], pipeline.predict_proba(Xr)),
                 "label": (got["label"], pipeline.predict(Xr))}
    else:
        pairs = {"variable": (got["variable"].reshape(-1), pipeline.predict(Xr))}
    outputs = {}
    for name, (onnx_y, ref) in pairs.items():
        onnx_y, ref = np.asarray(onnx_y, np.float64), np.asarray(ref, np.float64)
        abs_d = np.abs(onnx_y - ref)
        rel_d = abs_d / np.maximum(np.abs(ref), 1e-12)
        passed = bool(np.all(abs_d <= ATOL + RTOL * np.abs(ref)))
        outputs[name] = {"shape": list(onnx_y.shape), "shape_checked": onnx_y.shape == ref.shape,
                         "max_abs_diff": float(abs_d.max()), "max_rel_diff": float(rel_d.max()),
                         "finite": bool(np.isfinite(onnx_y).all()), "passed": passed,
                         "atol": ATOL, "rtol": RTOL}
    return {"onnx_path": str(onnx_path.name), "provider": "CPUExecutionProvider",
            "onnxruntime_version": ort.__version__,
            "method": "onnxruntime vs scikit-learn on the held-out target rows (float32 inputs)",
            "atol": ATOL, "rtol": RTOL, "input_shapes": {INPUT_NAME: list(X.shape)},
            "export_input_shapes": {INPUT_NAME: [1, X.shape[1]]}, "shapes_differ_from_export": True,
            "outputs": outputs, "passed": all(o["passed"] for o in outputs.values())}
