"""The export stage: fold LoRA, export ONNX, validate it, and build optional FP16/INT8 variants.

Importing this package is cheap: torch, onnx and onnxruntime are imported by the submodules
only when one of these functions is first called.

    fold_lora          hackforge_edge.export.fold         PEFT merge_and_unload on an fp32 copy
    export_onnx        hackforge_edge.export.onnx_export  dynamo exporter, legacy TorchScript fallback
    validate_export    hackforge_edge.export.validate     onnxruntime vs PyTorch at other shapes
    accuracy_check     hackforge_edge.export.validate     top-1 accuracy of an ONNX model on labelled data
    validate_variant   hackforge_edge.export.validate     variant vs FP32: size, diff, accuracy gate, latency
    make_fp16          hackforge_edge.export.quantize     FP16 weights/activations, float32 I/O
    make_int8          hackforge_edge.export.quantize     INT8 static QDQ (CNNs) or dynamic (transformers)
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "fold_lora": "hackforge_edge.export.fold",
    "has_lora": "hackforge_edge.export.fold",
    "ExportResult": "hackforge_edge.export.onnx_export",
    "export_onnx": "hackforge_edge.export.onnx_export",
    "image_classifier_axes": "hackforge_edge.export.onnx_export",
    "text_classifier_axes": "hackforge_edge.export.onnx_export",
    "validate_export": "hackforge_edge.export.validate",
    "accuracy_check": "hackforge_edge.export.validate",
    "measure_ort_latency": "hackforge_edge.export.validate",
    "validate_variant": "hackforge_edge.export.validate",
    "make_fp16": "hackforge_edge.export.quantize",
    "make_int8": "hackforge_edge.export.quantize",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attribute: `from hackforge_edge.export import export_onnx` imports only what it needs
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'hackforge_edge.export' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
