"""Build FP16 and INT8 variants of an exported FP32 ONNX model.

FP16: ``onnxruntime.transformers.float16`` (or onnxconverter-common when that is what is
installed), inputs and outputs kept float32 so a server feeds the same tensors to every variant.
INT8: ``onnxruntime.quantization``. Static QDQ with a CalibrationDataReader over real
target-domain samples suits CNNs; dynamic (weights only, activations quantised at run time)
suits transformers. Both run ``quant_pre_process`` first; dynamic clears the graph's stale
value_info before it (dynamo exports carry shapes that ORT's shape inference rejects).

These functions only build and check the file; judge a variant with
``hackforge_edge.export.validate.validate_variant`` (accuracy gate, logit diff, latency vs FP32).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import onnx

from hackforge_edge.errors import ExportError
from hackforge_edge.export.onnx_export import onnx_file_size_bytes

INT8_MODES = ("static", "dynamic")


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    text = f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def _publish(staged: Path, out_path: Path) -> None:
    """Check ``staged`` and rename it (external data first, model last) to ``out_path``."""
    try:
        onnx.checker.check_model(str(staged))
    except onnx.checker.ValidationError as err:
        raise ExportError(f"onnx.checker rejected {out_path.name}: {_one_line(err)}") from err
    model = onnx.load(str(staged), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            loc = next(e.value for e in tensor.external_data if e.key == "location")
            if (staged.parent / loc).exists():
                os.replace(staged.parent / loc, out_path.parent / loc)
    os.replace(staged, out_path)


def _record(
    variant: str, source: Path, out: Path, method: str, settings: dict, started: float
) -> dict:
    src_bytes = onnx_file_size_bytes(source)[0]
    out_bytes = onnx_file_size_bytes(out)[0]
    return {
        "variant": variant,
        "path": str(out),
        "source_path": str(source),
        "size_bytes": int(out_bytes),
        "source_size_bytes": int(src_bytes),
        "size_ratio": round(out_bytes / src_bytes, 4),
        "method": method,
        "settings": settings,
        "duration_s": round(time.perf_counter() - started, 3),
    }


def _staging_dir(out_path: Path) -> Path:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))


# ----------------------------------------------------------------------------- FP16
def _fp16_converter():
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxruntime.transformers.float16.convert_float_to_float16"
    except ImportError:
        pass
    try:
        from onnxconverter_common.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxconverter_common.float16.convert_float_to_float16"
    except ImportError as err:
        raise ExportError(
            "FP16 conversion needs onnxruntime's transformers tools or onnxconverter-common"
        ) from err


def make_fp16(onnx_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Write an FP16 copy of ``onnx_path`` to ``out_path``; inputs and outputs stay float32.

    Ops the converter considers unsafe in FP16 stay FP32 (its default block list).
    Returns {"variant": "fp16", "path", "source_path", "size_bytes", "source_size_bytes",
    "size_ratio" (out / source), "method", "settings", "duration_s"}.
    """
    started = time.perf_counter()
    source, out_path = Path(onnx_path), Path(out_path)
    convert, method = _fp16_converter()
    model = onnx.load(str(source))
    try:
        converted = convert(model, keep_io_types=True)
        # keep_io_types appends its Cast nodes at the end of the node list; ORT sorts on load
        # but onnx.checker (rightly) requires topological order
        from onnxruntime.transformers.onnx_model import OnnxModel

        OnnxModel.graph_topological_sort(converted.graph, is_deterministic=True)
    except Exception as err:  # noqa: BLE001 - the converter raises assorted errors
        raise ExportError(f"FP16 conversion failed: {_one_line(err)}") from err
    staging = _staging_dir(out_path)
    try:
        staged = staging / out_path.name
        large = _has_external_data(model)
        onnx.save_model(
            converted, str(staged), save_as_external_data=large, all_tensors_to_one_file=True,
            location=out_path.name + ".data" if large else None,
        )
        _publish(staged, out_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _record("fp16", source, out_path, method, {"keep_io_types": True}, started)


# ----------------------------------------------------------------------------- INT8
def _input_names(model_path: Path) -> list[str]:
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def _as_feeds(batches: Iterable[Any], names: list[str]) -> list[dict[str, np.ndarray]]:
    feeds = []
    for batch in batches:
        if isinstance(batch, Mapping):
            feed = {str(k): np.asarray(_numpy(v)) for k, v in batch.items()}
        elif isinstance(batch, (tuple, list)):
            feed = {n: np.asarray(_numpy(v)) for n, v in zip(names, batch)}
        else:
            feed = {names[0]: np.asarray(_numpy(batch))}
        if sorted(feed) != sorted(names):
            raise ExportError(f"calibration batch has inputs {sorted(feed)}, model wants {names}")
        feeds.append(feed)
    return feeds


def _numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


# Runs in a child process whose working directory is a scratch folder: onnxruntime's symbolic
# shape inference dumps ``sym_shape_infer_temp.onnx`` plus a ``<uuid>.data`` file into the CWD
# when it cannot infer every shape (onnxruntime/tools/symbolic_shape_infer.py), and changing the
# parent's CWD would be global and unsafe with threads.
_PREPROCESS_CHILD = """
import sys
from onnxruntime.quantization.shape_inference import quant_pre_process
src, dst, skip = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
try:
    quant_pre_process(src, dst, skip_symbolic_shape=skip)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}".splitlines()[0][:300], file=sys.stderr)
    sys.exit(1)
"""


def _run_preprocess(src: Path, dst: Path, skip_symbolic_shape: bool) -> str | None:
    """quant_pre_process in a child process; None on success, else its one-line error."""
    with tempfile.TemporaryDirectory(prefix="hf-edge-shape-infer-") as tmp:
        proc = subprocess.run([sys.executable, "-c", _PREPROCESS_CHILD, str(src), str(dst),
                               "1" if skip_symbolic_shape else "0"],
                              cwd=tmp, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _preprocess(src: Path, dst: Path) -> str:
    """quant_pre_process; falls back to ONNX shape inference alone if symbolic inference fails."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    first = _run_preprocess(src, dst, skip_symbolic_shape=False)
    if first is None:
        return "quant_pre_process"
    err = _run_preprocess(src, dst, skip_symbolic_shape=True)
    if err is None:
        return f"quant_pre_process(skip_symbolic_shape=True) after {first[:120]}"
    raise ExportError(f"quant_pre_process failed: {err}")


def make_int8(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_batches: Iterable[Any] | None = None,
    *,
    mode: str = "static",
    per_channel: bool | None = None,
    engine: str | None = None,
) -> dict:
    """Write an INT8 variant of ``onnx_path`` to ``out_path``.

    mode "static" (CNNs): QDQ format in the flavour the target ``engine`` runs fast
    (:func:`~hackforge_edge.export.int8_format.int8_settings`; None = this machine's CPU: U8S8 on
    x86-64, S8S8 on ARM64, symmetric S8S8 for TensorRT), weights per channel by default,
    MinMax ranges calibrated on ``calibration_batches`` (real target-domain samples: arrays
    NCHW float32 for single-input models, or name->array dicts; each item is one batch).
    mode "dynamic" (transformers): int8 weights, activations quantised at run time; needs no
    calibration data (per-tensor weights by default).

    Returns {"variant": "int8-static" | "int8-dynamic", "mode", "path", "source_path",
    "size_bytes", "source_size_bytes", "size_ratio", "method", "settings" {...,
    "preprocess"}, "calibration_samples" (static: number of samples, dynamic: 0),
    "duration_s"}. Raises ExportError on a bad mode, missing calibration data or a failure
    inside onnxruntime.quantization.
    """
    if mode not in INT8_MODES:
        raise ExportError(f"unknown INT8 mode {mode!r}; choose static or dynamic")
    from hackforge_edge.export.int8_format import int8_settings

    fmt = int8_settings(engine) if mode == "static" else None   # an unknown engine fails here, first
    started = time.perf_counter()
    source, out_path = Path(onnx_path), Path(out_path)
    large = _has_external_data(onnx.load(str(source), load_external_data=False))
    staging = _staging_dir(out_path)
    try:
        staged = staging / out_path.name
        if mode == "static":
            method, settings, n_samples = _quantize_static(
                source, staging, staged, calibration_batches, fmt, per_channel, large)
        else:
            method, settings, n_samples = _quantize_dynamic(
                source, staging, staged, per_channel, large)
        _publish(staged, out_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record = _record(f"int8-{mode}", source, out_path, method, settings, started)
    record["mode"] = mode
    record["calibration_samples"] = n_samples
    return record


def _calibration_reader(feeds: list[dict[str, np.ndarray]]):
    """An onnxruntime CalibrationDataReader over ``feeds`` (one dict per batch), rewindable."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(feeds)

    return _Reader()


def _quantize_static(
    source: Path, staging: Path, staged: Path, calibration_batches: Iterable[Any] | None,
    fmt: dict, per_channel: bool | None, large: bool,
) -> tuple[str, dict, int]:
    """Static QDQ INT8 of ``source`` into ``staged``; returns (method, settings, n_samples)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    prepared = staging / "prepared.onnx"
    feeds = _as_feeds(calibration_batches or [], _input_names(source))
    if not feeds:
        raise ExportError("static INT8 needs calibration batches of target-domain samples")
    n_samples = int(sum(next(iter(f.values())).shape[0] for f in feeds))
    how = _preprocess(source, prepared)
    per_channel = fmt["per_channel"] if per_channel is None else per_channel
    settings = {
        **fmt, "per_channel": per_channel, "calibrate_method": "MinMax",
        "calibration_samples": n_samples, "preprocess": how,
    }
    try:
        quantize_static(
            str(prepared), str(staged), _calibration_reader(feeds),
            quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=getattr(QuantType, fmt["activation_type"]),
            weight_type=getattr(QuantType, fmt["weight_type"]),
            calibrate_method=CalibrationMethod.MinMax, use_external_data_format=large,
            extra_options={"ActivationSymmetric": fmt["activation_symmetric"],
                           "WeightSymmetric": fmt["weight_symmetric"]},
        )
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"static INT8 quantisation failed: {_one_line(err)}") from err
    method = (f"onnxruntime.quantization.quantize_static (QDQ {fmt['activation_type']} "
              f"activations / {fmt['weight_type']} weights for {fmt['engine']}, MinMax calibration)")
    return method, settings, n_samples


def _quantize_dynamic(
    source: Path, staging: Path, staged: Path, per_channel: bool | None, large: bool,
) -> tuple[str, dict, int]:
    """Dynamic INT8 (weights only) of ``source`` into ``staged``; returns (method, settings, 0)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = staging / "prepared.onnx"
    model = onnx.load(str(source))
    # stale value_info from the exporter makes ORT's shape inference fail
    # ("Inferred shape and existing shape differ"); inference rebuilds it
    del model.graph.value_info[:]
    cleared = staging / "cleared.onnx"
    onnx.save_model(
        model, str(cleared), save_as_external_data=large, all_tensors_to_one_file=True,
        location="cleared.onnx.data" if large else None,
    )
    how = "value_info cleared; " + _preprocess(cleared, prepared)
    per_channel = False if per_channel is None else per_channel
    settings = {"weight_type": "QInt8", "per_channel": per_channel, "preprocess": how}
    try:
        quantize_dynamic(
            str(prepared), str(staged), weight_type=QuantType.QInt8,
            per_channel=per_channel, use_external_data_format=large,
        )
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"dynamic INT8 quantisation failed: {_one_line(err)}") from err
    return "onnxruntime.quantization.quantize_dynamic", settings, 0
