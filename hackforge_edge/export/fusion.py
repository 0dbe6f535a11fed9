"""onnxruntime's transformer optimizer (``onnxruntime.transformers.optimizer``) as a variant.

It rewrites known subgraphs into fused contrib ops (SkipLayerNormalization, BiasGelu,
Attention, EmbedLayerNormalization, ...). Its patterns were written for TorchScript exports;
on a dynamo export only some match (seen here with MiniLM: SkipLayerNormalization and BiasGelu
fuse, attention does not). ``opt_level=0`` applies the Python fusions only, not onnxruntime's
machine-specific graph optimisations, so the file stays portable. The result is validated
against PyTorch and judged on target data like any other variant.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from hackforge_edge.errors import ExportError

# transformers model_type -> the optimizer's model_type (BERT-like encoders share one)
ORT_MODEL_TYPES = {"bert": "bert", "distilbert": "bert", "roberta": "bert", "xlm-roberta": "bert",
                   "electra": "bert", "mpnet": "bert"}


def fuse_transformer(src: str | os.PathLike, dst: str | os.PathLike, *, model_type: str,
                     num_heads: int = 0, hidden_size: int = 0) -> dict:
    """Write the optimizer's output to ``dst`` when at least one fusion applied.

    Returns {"applied" (bool), "fusions" {op: count > 0}, "ort_model_type", "settings",
    "method", "duration_s", "path" (None when nothing fused: no file is written)}.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    ort_type = ORT_MODEL_TYPES.get(model_type)
    record = {"applied": False, "fusions": {}, "ort_model_type": ort_type, "path": None,
              "settings": {"opt_level": 0, "num_heads": int(num_heads), "hidden_size": int(hidden_size),
                           "use_gpu": False},
              "method": "onnxruntime.transformers.optimizer.optimize_model (python fusions only)"}
    if ort_type is None:
        record["reason"] = f"no optimizer patterns for model_type {model_type!r}"
        return record
    try:
        optimized = optimize_model(str(src), model_type=ort_type, num_heads=int(num_heads),
                                   hidden_size=int(hidden_size), opt_level=0, use_gpu=False)
    except Exception as err:  # noqa: BLE001 - the optimizer raises assorted errors
        raise ExportError(f"transformer optimizer failed: {type(err).__name__}: {err}"[:300]) from err
    stats = {k: int(v) for k, v in (optimized.get_fused_operator_statistics() or {}).items() if v}
    record["fusions"] = stats
    record["duration_s"] = round(time.perf_counter() - started, 3)
    if not stats:
        record["reason"] = "no fusion pattern matched this export"
        return record
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        staged = staging / dst.name
        optimized.save_model_to_file(str(staged))
        import onnx

        onnx.checker.check_model(str(staged))
        os.replace(staged, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record.update(applied=True, path=str(dst))
    return record
