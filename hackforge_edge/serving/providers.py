"""Choose onnxruntime execution providers: the best available by default, or exactly as asked.

Default order: TensorRT, CUDA, CPU, keeping those this onnxruntime build offers. Short
names are accepted (``tensorrt``/``trt``, ``cuda``, ``cpu``, ``openvino``, ``coreml``, ...).
An unknown or unavailable provider is a :class:`ServingError` that lists the available ones.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from hackforge_edge.errors import ServingError

PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
}


def available_providers() -> list[str]:
    """Execution providers compiled into the installed onnxruntime (not a hardware probe)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def canonical_name(name: str, available: Sequence[str]) -> str:
    """Map a short or differently-cased provider name to onnxruntime's full name."""
    key = name.strip()
    if not key:
        raise ServingError("empty execution provider name")
    lowered = key.lower()
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    for full in list(available) + list(_ALIASES.values()):
        if full.lower() in (lowered, lowered + "executionprovider"):
            return full
    raise ServingError(f"unknown execution provider {name!r}; available here: {', '.join(available)}")


def resolve_providers(requested: Iterable[str] | None = None,
                      available: Sequence[str] | None = None) -> list[str]:
    """Providers to pass to ``InferenceSession``, in priority order.

    ``requested`` None or empty -> the PREFERRED ones that are available. Otherwise each
    requested name must be available in this onnxruntime build; duplicates are dropped.
    """
    available = list(available_providers() if available is None else available)
    requested = [r for r in (requested or []) if r and r.strip()]
    if not requested:
        chosen = [p for p in PREFERRED if p in available]
        return chosen or available[:1]
    chosen: list[str] = []
    for name in requested:
        full = canonical_name(name, available)
        if full not in available:
            raise ServingError(f"execution provider {full} is not available in this onnxruntime build; "
                               f"available here: {', '.join(available)}")
        if full not in chosen:
            chosen.append(full)
    return chosen


def provider_options(providers: Sequence[str], cache_dir: str | None = None) -> list[dict]:
    """Per-provider options, aligned with ``providers``.

    TensorRT builds an engine per model and per machine (not portable) that takes minutes on a
    Jetson: with ``cache_dir`` the engines are cached there across restarts.
    """
    options: list[dict] = []
    for p in providers:
        if p == "TensorrtExecutionProvider" and cache_dir:
            options.append({"trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir,
                            "trt_timing_cache_enable": True, "trt_timing_cache_path": cache_dir})
        else:
            options.append({})
    return options
