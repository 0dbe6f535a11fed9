"""Which INT8 format suits which engine: the settings ``make_int8`` uses per target engine.

What each engine runs fast, from the engines' own documentation (onnxruntime "Quantize ONNX
models": "on x86-64 with VNNI/AVX512-VNNI/AMX U8S8 is the recommended format; S8S8 is the default
and runs well on ARM64"; TensorRT "Explicit quantization": only symmetric signed INT8 Q/DQ
scales, per-channel weights):

    ort-cpu on x86-64      QDQ, activations uint8 (asymmetric), weights int8 per channel (U8S8)
    ort-cpu on ARM64       QDQ, activations int8, weights int8 per channel (S8S8)
    tensorrt / ort-cuda    QDQ, activations and weights int8, symmetric, per channel

On this project's development CPU (x86-64 with AVX512-VNNI and AMX) S8S8 QDQ ResNet-50 ran
slower than FP32 while U8S8 ran ~2.7x faster (issue 15; ``benchmarks/int8_vs_fp32.py``).
Calibration is MinMax over target-domain samples in every case (recorded with the variant).
"""

from __future__ import annotations

import platform
from typing import Any

ENGINES = ("ort-cpu-x86", "ort-cpu-arm", "tensorrt", "ort-cuda")


def local_engine() -> str:
    """ort-cpu-x86 or ort-cpu-arm for this machine's CPU."""
    machine = platform.machine().lower()
    return "ort-cpu-arm" if machine in ("aarch64", "arm64") or machine.startswith("arm") else "ort-cpu-x86"


def int8_settings(engine: str | None = None) -> dict[str, Any]:
    """The quantize_static settings for ``engine`` (None: this machine's CPU), as plain values:
    {"engine", "quant_format", "activation_type", "weight_type", "per_channel",
    "activation_symmetric", "weight_symmetric", "reason"}."""
    from hackforge_edge.errors import ExportError

    engine = engine or local_engine()
    if engine == "ort-cpu-x86":
        act, sym_a, reason = "QUInt8", False, ("x86-64 onnxruntime: U8S8 uses the VNNI/AMX u8*s8 "
                                              "kernels; S8S8 falls back to slower paths")
    elif engine == "ort-cpu-arm":
        act, sym_a, reason = "QInt8", False, "ARM64 onnxruntime: S8S8 (SDOT/I8MM kernels)"
    elif engine in ("tensorrt", "ort-cuda"):
        act, sym_a, reason = "QInt8", True, "TensorRT explicit quantization: symmetric int8 Q/DQ only"
    else:
        raise ExportError(f"unknown INT8 target engine {engine!r} (known: {', '.join(ENGINES)})")
    return {"engine": engine, "quant_format": "QDQ", "activation_type": act, "weight_type": "QInt8",
            "per_channel": True, "activation_symmetric": sym_a, "weight_symmetric": True,
            "reason": reason}
