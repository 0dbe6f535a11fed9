"""Check an ONNX export against its PyTorch model, and an FP16/INT8 variant against the FP32 one.

``validate_export`` follows optimum's order: names, then shapes, then values, at input shapes
other than the export shapes. Names or shapes that disagree are errors (ExportError); values
outside tolerance are reported with their numbers (``passed: false``), not raised.

``validate_variant`` is the gate for optional variants: size ratio, max |logit diff| vs FP32,
top-1 accuracy on labelled target-domain samples (a variant losing more than
``max_accuracy_drop_pp`` percentage points is rejected) and onnxruntime latency vs FP32,
measured on this machine. Every dict returned here is JSON-ready: plain floats, no NaN/inf
(a non-finite number becomes None and fails the check).
"""

from __future__ import annotations

import math
import os
import platform
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from hackforge_edge.errors import ExportError
from hackforge_edge.runtime import session as runtime_session
from hackforge_edge.runtime.timing import Timing, time_calls, time_interleaved

PROVIDER = "CPUExecutionProvider"
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
DEFAULT_MAX_ACCURACY_DROP_PP = 1.0
LATENCY_METHOD = (
    "measured: onnxruntime CPUExecutionProvider on this machine, time.perf_counter around "
    "session.run, batch 1, warm-up runs excluded, median of the timed runs; FP32 and variant "
    "runs interleaved (order rotated each round, thread-pool spin-wait off) so both see the "
    "same CPU contention"
)


# ----------------------------------------------------------------------------- helpers
def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def make_session(
    onnx_path: str | os.PathLike,
    *,
    threads: int | None = None,
    optimization: str = "all",
) -> ort.InferenceSession:
    """An onnxruntime CPU session; ``threads`` sets intra_op_num_threads (None: ORT default).

    optimization: "all" (ORT_ENABLE_ALL, in memory only, the default ORT applies on a target),
    "basic" or "disabled". Spin-wait is off: FP32 and variant are timed interleaved.
    """
    return runtime_session.make_session(
        onnx_path, providers=[PROVIDER], threads=threads,
        inter_op_threads=1 if threads is not None else None, optimization=optimization,
        allow_spinning=False, error=ExportError)


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _feeds(inputs: Any, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map ``inputs`` (array/tensor, tuple in input order, or name->array) onto input names."""
    if isinstance(inputs, Mapping):
        return {str(k): _to_numpy(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        if len(inputs) != len(input_names):
            raise ExportError(f"{len(inputs)} inputs given for ONNX inputs {list(input_names)}")
        return {name: _to_numpy(v) for name, v in zip(input_names, inputs)}
    if len(input_names) != 1:
        raise ExportError(f"one array given for ONNX inputs {list(input_names)}")
    return {input_names[0]: _to_numpy(inputs)}


def _flatten(out: Any) -> list[Any]:
    """Tensors of a model output in export order (ModelOutput.to_tuple drops None fields)."""
    if out is None:
        return []
    if hasattr(out, "to_tuple"):
        return _flatten(out.to_tuple())
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in _flatten(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _flatten(v)]
    return [out]


def _run_torch(model: Any, feeds: dict[str, np.ndarray], positional: bool) -> list[np.ndarray]:
    import torch  # validation of an export needs torch; the variant gate does not

    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in feeds.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(*tensors.values()) if positional else model(**tensors)
    finally:
        model.train(was_training)
    return [_to_numpy(t).astype(np.float64, copy=False) for t in _flatten(out)]


def compare_arrays(actual: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> dict:
    """Element-wise comparison of two same-shape arrays.

    max_abs_diff = max |a - r|; max_rel_diff = max |a - r| / |r| over elements with |r| > atol
    (near-zero references are judged by atol alone); passed = every |a - r| <= atol + rtol*|r|
    (numpy.allclose) and everything finite.
    """
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    finite = bool(np.isfinite(a).all() and np.isfinite(r).all())
    diff = np.abs(a - r)
    max_abs = float(diff.max()) if diff.size else 0.0
    big = np.abs(r) > atol
    max_rel = float((diff[big] / np.abs(r[big])).max()) if big.any() else 0.0
    passed = finite and bool(np.all(diff <= atol + rtol * np.abs(r)))
    return {
        "max_abs_diff": _finite(max_abs),
        "max_rel_diff": _finite(max_rel),
        "finite": finite,
        "passed": passed,
    }


# ----------------------------------------------------------------------------- export vs torch
def _check_names(feeds: dict[str, np.ndarray], onnx_inputs: list[str], onnx_outputs: list[str],
                 output_names: Sequence[str] | None) -> None:
    """Step 1: the given inputs and the expected outputs carry the ONNX graph's names."""
    if sorted(feeds) != sorted(onnx_inputs):
        raise ExportError(f"input names differ: onnx {onnx_inputs} vs given {sorted(feeds)}")
    if output_names is not None and list(output_names) != onnx_outputs:
        raise ExportError(
            f"output names differ: onnx {onnx_outputs} vs expected {list(output_names)}"
        )


def _run_both_checking_shapes(
    model: Any, session: ort.InferenceSession, feeds: dict[str, np.ndarray], positional: bool,
    onnx_outputs: list[str],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Step 2: run PyTorch and onnxruntime; same output count and shapes. (actual, reference)."""
    reference = _run_torch(model, feeds, positional)
    if len(reference) != len(onnx_outputs):
        raise ExportError(
            f"onnx has {len(onnx_outputs)} outputs {onnx_outputs}, "
            f"PyTorch returned {len(reference)}"
        )
    try:
        actual = session.run(onnx_outputs, feeds)
    except Exception as err:  # noqa: BLE001 - ORT: InvalidArgument / Fail / RuntimeException
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        raise ExportError(f"onnxruntime rejected inputs {shapes}: {_one_line(err)}") from err
    for name, got, ref in zip(onnx_outputs, actual, reference):
        if tuple(got.shape) != tuple(ref.shape):
            raise ExportError(
                f"output {name} shape {list(got.shape)} differs from PyTorch {list(ref.shape)}"
            )
    return actual, reference


def _compare_outputs(onnx_outputs: list[str], actual: list[np.ndarray],
                     reference: list[np.ndarray], atol: float, rtol: float) -> dict[str, dict]:
    """Step 3: values within tolerance, per output: {name: {shape, ..., atol, rtol}}."""
    outputs = {}
    for name, got, ref in zip(onnx_outputs, actual, reference):
        entry = {"shape": list(got.shape), "shape_checked": True}
        entry.update(compare_arrays(got, ref, atol, rtol))
        entry.update({"atol": float(atol), "rtol": float(rtol)})
        outputs[name] = entry
    return outputs


def validate_export(
    model: Any,
    onnx_path: str | os.PathLike,
    example_inputs_at_other_shape: Any,
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    output_names: Sequence[str] | None = None,
    export_input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict:
    """Compare onnxruntime (CPU) outputs with the PyTorch model's at the given inputs.

    example_inputs_at_other_shape: array/tensor (single-input models), tuple in ONNX input
    order, or name->array mapping (passed to the model as keyword arguments, e.g. input_ids,
    attention_mask). Use a batch size (and sequence length) other than the export ones.
    output_names: expected ONNX output names (default: not checked beyond their count).
    export_input_shapes: ``ExportResult.export_input_shapes``; recorded, and used to report
    whether the validation shapes really differ from the export shapes.

    Returns {"onnx_path", "provider", "onnxruntime_version", "atol", "rtol",
    "input_shapes" {name: [dims]}, "export_input_shapes", "shapes_differ_from_export" (bool or
    None), "outputs" {name: {"shape", "shape_checked", "max_abs_diff", "max_rel_diff",
    "atol", "rtol", "finite", "passed"}}, "passed"}. ``passed`` is False when any output misses
    the tolerance; it is not raised.

    Raises ExportError on an input/output name mismatch, an output count mismatch, inputs
    onnxruntime rejects (wrong rank, a static dimension) or an output shape mismatch.
    """
    if atol < 0 or rtol < 0:
        raise ExportError(f"tolerances must be >= 0 (atol={atol}, rtol={rtol})")
    session = make_session(onnx_path)
    onnx_inputs = [i.name for i in session.get_inputs()]
    onnx_outputs = [o.name for o in session.get_outputs()]
    positional = not isinstance(example_inputs_at_other_shape, Mapping)
    feeds = _feeds(example_inputs_at_other_shape, onnx_inputs)
    _check_names(feeds, onnx_inputs, onnx_outputs, output_names)                  # 1. names
    actual, reference = _run_both_checking_shapes(model, session, feeds, positional,
                                                  onnx_outputs)                     # 2. shapes
    outputs = _compare_outputs(onnx_outputs, actual, reference, atol, rtol)        # 3. values

    input_shapes = {k: list(v.shape) for k, v in feeds.items()}
    differ = None
    if export_input_shapes is not None:
        exported = {k: list(v) for k, v in export_input_shapes.items()}
        differ = all(input_shapes.get(k) != v for k, v in exported.items())
    return {
        "onnx_path": str(onnx_path),
        "provider": PROVIDER,
        "onnxruntime_version": ort.__version__,
        "method": "onnxruntime vs PyTorch eager (fp32, eval, inference_mode) on the same inputs",
        "atol": float(atol),
        "rtol": float(rtol),
        "input_shapes": input_shapes,
        "export_input_shapes": (
            {k: list(v) for k, v in export_input_shapes.items()} if export_input_shapes else None
        ),
        "shapes_differ_from_export": differ,
        "outputs": outputs,
        "passed": all(o["passed"] for o in outputs.values()),
    }


# ----------------------------------------------------------------------------- accuracy
def _batches(feeds: dict[str, np.ndarray], batch_size: int):
    n = _num_samples(feeds)
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in feeds.items()}


def _num_samples(feeds: dict[str, np.ndarray]) -> int:
    sizes = {int(v.shape[0]) for v in feeds.values()}
    if len(sizes) != 1:
        raise ExportError(f"inputs disagree on the number of samples: {sorted(sizes)}")
    return sizes.pop()


def _logits(session: ort.InferenceSession, feeds: dict, batch_size: int) -> np.ndarray:
    out_name = session.get_outputs()[0].name
    parts = [session.run([out_name], b)[0] for b in _batches(feeds, batch_size)]
    return np.concatenate(parts, axis=0).astype(np.float64)


def accuracy_check(
    onnx_path: str | os.PathLike,
    inputs: Any,
    labels: Any,
    *,
    reference_onnx_path: str | os.PathLike | None = None,
    batch_size: int = 32,
) -> dict:
    """Top-1 accuracy of an ONNX classifier (first output = logits) on labelled samples.

    inputs: NCHW float32 images (array or tensor) for CNNs, or name->array for text models,
    N samples along axis 0; labels: N integer class ids. With ``reference_onnx_path`` (the FP32
    model) also reports how often both models pick the same top-1 class.

    Returns {"accuracy" (fraction 0..1), "n_samples", "n_correct", "reference_accuracy",
    "agreement_top1_with_reference" (fraction 0..1; both None without a reference),
    "method"}.
    """
    labels = _to_numpy(labels).astype(np.int64).reshape(-1)
    session = make_session(onnx_path)
    feeds = _feeds(inputs, [i.name for i in session.get_inputs()])
    n = _num_samples(feeds)
    if n == 0 or n != labels.shape[0]:
        raise ExportError(
            f"accuracy check needs N > 0 samples and N labels (got {n} and {labels.shape[0]})"
        )
    pred = _logits(session, feeds, batch_size).argmax(axis=1)
    result = {
        "accuracy": float((pred == labels).mean()),
        "n_samples": int(n),
        "n_correct": int((pred == labels).sum()),
        "reference_accuracy": None,
        "agreement_top1_with_reference": None,
        "method": "measured: onnxruntime CPU, argmax of the first output vs labels",
    }
    if reference_onnx_path is not None:
        ref_session = make_session(reference_onnx_path)
        ref_pred = _logits(ref_session, feeds, batch_size).argmax(axis=1)
        result["reference_accuracy"] = float((ref_pred == labels).mean())
        result["agreement_top1_with_reference"] = float((ref_pred == pred).mean())
    return result


# ----------------------------------------------------------------------------- latency
def latency_summary(timing: Timing) -> dict:
    """{"median_ms", "p90_ms", "min_ms"} of a timed loop, in milliseconds."""
    return {
        "median_ms": round(timing.p50_ms, 4),
        "p90_ms": round(timing.percentile_ms(90), 4),
        "min_ms": round(timing.min_ms, 4),
    }


def _run(session: Any, feeds: dict[str, np.ndarray]):
    return lambda: session.run(None, feeds)


def measure_ort_latency(
    onnx_path: str | os.PathLike,
    inputs: Any,
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
) -> dict:
    """Latency of one onnxruntime CPU session.run on ``inputs`` as given (slice to batch 1).

    Returns {"median_ms", "p90_ms", "min_ms", "runs", "warmup_runs", "threads",
    "batch_size", "provider", "method"}: wall-clock milliseconds on this machine.
    """
    session = make_session(onnx_path, threads=threads)
    feeds = _feeds(inputs, [i.name for i in session.get_inputs()])
    timing = time_calls(_run(session, feeds), warmup=warmup, runs=runs)
    return {
        **latency_summary(timing),
        "runs": runs,
        "warmup_runs": warmup,
        "threads": threads,
        "batch_size": _num_samples(feeds),
        "provider": PROVIDER,
        "machine": platform.machine(),
        "method": "measured: time.perf_counter around session.run, warm-up excluded, median",
    }


# ----------------------------------------------------------------------------- variant gate
def _file_bytes(path: str | os.PathLike) -> int:
    from hackforge_edge.export.onnx_export import onnx_file_size_bytes

    return onnx_file_size_bytes(path)[0]


def _variant_entry(fp32_path: str | os.PathLike, variant_path: str | os.PathLike,
                   max_accuracy_drop_pp: float, min_speedup: float | None) -> dict[str, Any]:
    """The gate's record before anything is run: sizes, limits, status "rejected", no reasons."""
    fp32_bytes, var_bytes = _file_bytes(fp32_path), _file_bytes(variant_path)
    return {
        "path": str(variant_path),
        "fp32_path": str(fp32_path),
        "size_bytes": var_bytes,
        "fp32_size_bytes": fp32_bytes,
        "size_ratio": round(var_bytes / fp32_bytes, 4),
        "max_abs_diff_logits": None,
        "accuracy": {},  # stay empty when the variant cannot be loaded or run
        "latency": {},
        "max_accuracy_drop_pp": float(max_accuracy_drop_pp),
        "min_speedup": min_speedup,
        "status": "rejected",
        "reasons": [],
    }


def _variant_accuracy(ref_logits: np.ndarray, var_logits: np.ndarray,
                      labels: np.ndarray) -> dict:
    """Top-1 accuracy of FP32 and variant on the labels, the drop in pp and their agreement."""
    acc_fp32 = float((ref_logits.argmax(1) == labels).mean())
    acc_var = float((var_logits.argmax(1) == labels).mean())
    return {
        "fp32": acc_fp32,
        "variant": acc_var,
        "drop_pp": round((acc_fp32 - acc_var) * 100.0, 4),
        "agreement_top1_with_fp32": float((ref_logits.argmax(1) == var_logits.argmax(1)).mean()),
        "n_samples": int(labels.shape[0]),
        "method": "measured: onnxruntime CPU, top-1 vs labels on the given target-domain samples",
    }


def _variant_latency(fp32: ort.InferenceSession, variant: ort.InferenceSession,
                     feeds: dict[str, np.ndarray], warmup: int, runs: int,
                     threads: int | None) -> dict:
    """Batch-1 latency of FP32 and variant, timed interleaved, and the speedup of the variant."""
    one = {k: v[:1] for k, v in feeds.items()}
    t_fp32, t_var = time_interleaved([_run(fp32, one), _run(variant, one)],
                                     warmup=warmup, runs=runs)
    lat_fp32, lat_var = latency_summary(t_fp32), latency_summary(t_var)
    return {
        "fp32": lat_fp32,
        "variant": lat_var,
        "speedup_vs_fp32": (
            round(lat_fp32["median_ms"] / lat_var["median_ms"], 3)
            if lat_var["median_ms"] > 0
            else None
        ),
        "batch_size": 1,
        "runs": runs,
        "warmup_runs": warmup,
        "threads": threads,
        "method": LATENCY_METHOD,
    }


def _variant_reasons(entry: dict, max_accuracy_drop_pp: float,
                     min_speedup: float | None) -> list[str]:
    """Why the variant is rejected (empty: accepted): non-finite logits, accuracy, speed."""
    reasons = []
    acc = entry["accuracy"]
    if entry["max_abs_diff_logits"] is None:
        reasons.append("variant logits are not finite")
    if acc["drop_pp"] > max_accuracy_drop_pp:
        reasons.append(
            f"top-1 accuracy drops {acc['drop_pp']:.2f} pp ({acc['fp32']:.4f} -> "
            f"{acc['variant']:.4f}), more than the {max_accuracy_drop_pp:g} pp allowed"
        )
    speedup = entry["latency"]["speedup_vs_fp32"]
    if min_speedup is not None and (speedup is None or speedup < min_speedup):
        reasons.append(f"speedup vs FP32 {speedup} is below the {min_speedup:g} required")
    return reasons


def validate_variant(
    fp32_path: str | os.PathLike,
    variant_path: str | os.PathLike,
    inputs: Any,
    labels: Any,
    *,
    max_accuracy_drop_pp: float = DEFAULT_MAX_ACCURACY_DROP_PP,
    latency_runs: int = 50,
    latency_warmup: int = 5,
    threads: int | None = None,
    batch_size: int = 32,
    min_speedup: float | None = None,
) -> dict:
    """Judge an FP16/INT8 variant against its FP32 model on labelled target-domain samples.

    inputs/labels: as for ``accuracy_check`` (held-out target data, not calibration data).
    max_accuracy_drop_pp: largest accepted drop of top-1 accuracy, in percentage points.
    min_speedup: if set, also reject a variant whose measured batch-1 speedup over FP32 on
    this CPU is below it (INT8 is not always faster); None: latency is reported, not gated.

    Returns {"path", "fp32_path", "size_bytes", "fp32_size_bytes", "size_ratio" (variant /
    FP32), "max_abs_diff_logits" (vs FP32 on ``inputs``), "accuracy" {"fp32", "variant",
    "drop_pp", "agreement_top1_with_fp32", "n_samples"}, "latency" {"fp32" {median_ms, p90_ms,
    min_ms}, "variant" {...}, "speedup_vs_fp32" (FP32 median / variant median), "batch_size": 1,
    "runs", "warmup_runs", "threads", "method"}, "max_accuracy_drop_pp", "status"
    ("accepted" | "rejected"), "reasons" [str]}. A variant onnxruntime cannot load or run is
    rejected with the error as its reason (accuracy and latency left empty), not raised.
    """
    if max_accuracy_drop_pp < 0:
        raise ExportError(f"max_accuracy_drop_pp must be >= 0, got {max_accuracy_drop_pp}")
    entry = _variant_entry(fp32_path, variant_path, max_accuracy_drop_pp, min_speedup)
    fp32 = make_session(fp32_path, threads=threads)
    try:
        variant = make_session(variant_path, threads=threads)
    except ExportError as err:
        entry["reasons"].append(str(err))
        return entry
    names = [i.name for i in fp32.get_inputs()]
    feeds = _feeds(inputs, names)
    labels = _to_numpy(labels).astype(np.int64).reshape(-1)
    n = _num_samples(feeds)
    if n == 0 or n != labels.shape[0]:
        raise ExportError(
            f"variant check needs N > 0 samples and N labels (got {n} and {labels.shape[0]})"
        )

    ref_logits = _logits(fp32, feeds, batch_size)
    try:
        var_logits = _logits(variant, feeds, batch_size)
    except Exception as err:  # noqa: BLE001 - a variant that fails at run time is rejected
        entry["reasons"].append(f"onnxruntime cannot run the variant: {_one_line(err)}")
        return entry
    diff = compare_arrays(var_logits, ref_logits, atol=0.0, rtol=0.0)
    entry["max_abs_diff_logits"] = diff["max_abs_diff"]
    entry["accuracy"] = _variant_accuracy(ref_logits, var_logits, labels)
    entry["latency"] = _variant_latency(fp32, variant, feeds, latency_warmup, latency_runs,
                                        threads)
    entry["reasons"].extend(_variant_reasons(entry, max_accuracy_drop_pp, min_speedup))
    entry["status"] = "rejected" if entry["reasons"] else "accepted"
    return entry
