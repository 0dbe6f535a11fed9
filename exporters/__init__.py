"""The export stage: fold LoRA, export ONNX, validate it, and build optional FP16/INT8 variants.

Importing this package is cheap: torch, onnx and onnxruntime are imported by the submodules
only when one of these functions is first called.

    fold_lora          exporters.fold         PEFT merge_and_unload on an fp32 copy
    export_onnx        exporters.onnx_export  dynamo exporter, legacy TorchScript fallback
    validate_export    exporters.validate     onnxruntime vs PyTorch at other shapes
    accuracy_check     exporters.validate     top-1 accuracy of an ONNX model on labelled data
    validate_variant   exporters.validate     variant vs FP32: size, diff, accuracy gate, latency
    make_fp16          exporters.quantize     FP16 weights/activations, float32 I/O
    make_int8          exporters.quantize     INT8 static QDQ (CNNs) or dynamic (transformers)
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "fold_lora": "exporters.fold",
    "has_lora": "exporters.fold",
    "ExportResult": "exporters.onnx_export",
    "export_onnx": "exporters.onnx_export",
    "image_classifier_axes": "exporters.onnx_export",
    "text_classifier_axes": "exporters.onnx_export",
    "validate_export": "exporters.validate",
    "accuracy_check": "exporters.validate",
    "measure_ort_latency": "exporters.validate",
    "validate_variant": "exporters.validate",
    "make_fp16": "exporters.quantize",
    "make_int8": "exporters.quantize",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attribute: `from exporters import export_onnx` imports only what it needs
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'exporters' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
