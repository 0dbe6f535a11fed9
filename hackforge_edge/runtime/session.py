"""The one place an onnxruntime ``InferenceSession`` is created.

Every caller (validation, measurement, calibration, serving, benchmarks) gets the same
options: log severity errors-only, graph optimisation level by name, thread counts when
given. Spin-waiting of the intra-op thread pool is onnxruntime's default (on) unless a caller
turns it off: timing two engines against each other must (``allow_spinning=False``), since a
pool that spins after its own call steals the cores the next engine's call needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from hackforge_edge.errors import HFEdgeError, ModelFileError, UsageError

CPU = "CPUExecutionProvider"
OPTIMIZATION_LEVELS = ("all", "extended", "basic", "disabled")


def one_line(exc: BaseException, limit: int = 200) -> str:
    """First line of an exception's text (onnxruntime's are long), or its type name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def session_options(*, threads: int | None = None, inter_op_threads: int | None = None,
                    optimization: str = "all", allow_spinning: bool | None = None):
    """``ort.SessionOptions`` as every session here uses them.

    ``threads``: intra-op threads (None or 0: onnxruntime's default, one per core).
    ``optimization``: all | extended | basic | disabled (graph optimisation level, in memory).
    ``allow_spinning``: None keeps onnxruntime's default (spin); False makes idle pool threads
    sleep at once (``session.intra_op.allow_spinning = 0``).
    """
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    if optimization not in levels:
        raise UsageError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[optimization]
    opts.log_severity_level = 3          # warnings such as unused initialisers stay off stderr
    if threads:
        opts.intra_op_num_threads = int(threads)
    if inter_op_threads:
        opts.inter_op_num_threads = int(inter_op_threads)
    if allow_spinning is not None:
        value = "1" if allow_spinning else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", value)
        opts.add_session_config_entry("session.inter_op.allow_spinning", value)
    return opts


def make_session(path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                 provider_options: Sequence[dict[str, Any]] | None = None,
                 threads: int | None = None, inter_op_threads: int | None = None,
                 optimization: str = "all", allow_spinning: bool | None = None,
                 error: type[HFEdgeError] = ModelFileError):
    """An ``onnxruntime.InferenceSession`` on ``path`` (default provider: CPU).

    Raises UsageError for a provider this onnxruntime build lacks, and ``error`` (one line,
    naming the file) when the file is missing or onnxruntime cannot load it.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    available = ort.get_available_providers()
    providers = list(providers or [CPU])
    missing = [p for p in providers if p not in available]
    if missing:
        raise UsageError(f"onnxruntime providers {missing} are not available (available: {available})")
    opts = session_options(threads=threads, inter_op_threads=inter_op_threads,
                           optimization=optimization, allow_spinning=allow_spinning)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers,
                                    provider_options=list(provider_options) if provider_options else None)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
        raise error(f"{path}: onnxruntime could not load the model: {one_line(exc)}") from None
