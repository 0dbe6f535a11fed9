"""Reading an ONNX graph and giving every tensor a concrete shape at chosen input shapes.

Input shapes: fixed dims are kept, dim 0 is the batch, dim 1 of text inputs the sequence
length; anything else must be given (``--input-shape name=1x3x224x224``). Every other shape
comes from onnxruntime's symbolic shape inference, which evaluates the shape arithmetic that
exporters emit (Shape -> Gather -> Concat -> Reshape) to constants; where it cannot finish, ONNX's
own shape inference (with data propagation) fills in what it can.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from hackforge_edge.errors import ModelFileError

log = logging.getLogger(__name__)

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
SYMBOLIC = "onnxruntime symbolic shape inference"


def parse_input_shapes(specs) -> dict[str, list[int]]:
    """``{"x": [1, 3, 224, 224]}`` or ``["x=1x3x224x224", ...]`` -> dict."""
    if not specs:
        return {}
    if isinstance(specs, dict):
        return {k: [int(d) for d in v] for k, v in specs.items()}
    out = {}
    for spec in ([specs] if isinstance(specs, str) else specs):
        name, sep, dims = str(spec).partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = [int(d) for d in re.split(r"[x,]", dims.strip()) if d]
            if not out[name.strip()] or min(out[name.strip()]) <= 0:
                raise ValueError
        except ValueError:
            raise ModelFileError(f"bad --input-shape {spec!r}: expected name=1x3x224x224") from None
    return out


def load_onnx(path: str | os.PathLike):
    """Load the graph without external weight data (shapes only); clean one-line errors."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - protobuf raises undocumented types on garbage input
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(f"{path}: not an ONNX model (empty graph or no opset; truncated?)")
    return model


def opset_of(model) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def graph_inputs(model) -> list[Any]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _override(inp, shape: list[int], dims, path) -> list[int]:
    if dims and len(shape) != len(dims):
        raise ModelFileError(f"{path}: --input-shape {inp.name} has rank {len(shape)}, "
                             f"the model input has rank {len(dims)}")
    # an override may fill symbolic dims, never contradict fixed ones (the model would
    # refuse such an input, and its cost would be made up)
    for j, (d, given) in enumerate(zip(dims, shape, strict=False)):  # dims may be empty
        if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != given:
            raise ModelFileError(
                f"{path}: --input-shape {inp.name} dim {j} is {given}, but the model fixes "
                f"it at {d.dim_value} (only symbolic dims can be set)")
    return shape


def resolve_input_shapes(model, path, *, batch: int, seq_len: int | None,
                         input_shapes: dict[str, list[int]] | None,
                         warnings: list[str] | None = None) -> dict[str, list[int]]:
    """Concrete shape per graph input: fixed dims kept, dim 0 -> batch, text dim 1 -> seq_len."""
    input_shapes = input_shapes or {}
    known = {i.name for i in graph_inputs(model)}
    unknown_names = set(input_shapes) - known
    if unknown_names:
        raise ModelFileError(f"{path}: --input-shape names {sorted(unknown_names)} are not inputs "
                             f"(inputs: {sorted(known)})")
    out: dict[str, list[int]] = {}
    for inp in graph_inputs(model):
        dims = inp.type.tensor_type.shape.dim
        if inp.name in input_shapes:
            out[inp.name] = _override(inp, list(input_shapes[inp.name]), dims, path)
            continue
        shape, missing = [], []
        for i, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                if i == 0 and d.dim_value != batch and warnings is not None:
                    warnings.append(f"input {inp.name} has a fixed batch of {d.dim_value}; "
                                    f"analysed at {d.dim_value}, not {batch}")
                shape.append(int(d.dim_value))
            elif i == 0:
                shape.append(int(batch))
            elif i == 1 and inp.name in TEXT_INPUTS and seq_len:
                shape.append(int(seq_len))
            else:
                shape.append(-1)
                missing.append(d.dim_param or f"dim{i}")
        if missing:
            hint = " or --seq-len" if inp.name in TEXT_INPUTS else ""
            example = "x".join(str(s if s > 0 else 224) for s in shape)
            raise ModelFileError(f"{path}: cannot infer the shape of input {inp.name!r} "
                                 f"(unknown dims {missing}); pass --input-shape "
                                 f"{inp.name}={example}{hint}")
        out[inp.name] = shape
    return out


def infer_concrete_shapes(model, shapes: dict[str, list[int]], path) -> tuple[Any, str]:
    """``model`` with its inputs fixed to ``shapes`` and every inferable tensor shape in
    ``value_info``; plus the method used (onnxruntime's symbolic inference, or onnx's after
    the former failed, with why)."""
    for inp in graph_inputs(model):
        tshape = inp.type.tensor_type.shape
        del tshape.dim[:]
        for v in shapes[inp.name]:
            tshape.dim.add().dim_value = int(v)
    # stale symbolic shapes from the exporter would conflict with the concrete ones
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    if len(model.functions):
        from onnx import inliner
        model = inliner.inline_local_functions(model)
    try:
        inferred, complete = _symbolic(model)
    except Exception as exc:  # noqa: BLE001 - the tool raises bare Exception/AssertionError on ops it lacks
        reason = _one_line(exc)
        log.debug("symbolic shape inference failed on %s: %s", path, reason)
        return _onnx_infer(model, path), f"onnx shape inference ({SYMBOLIC} failed: {reason})"
    if not complete:
        try:               # let onnx fill what the symbolic pass left open
            inferred = _onnx_infer(inferred, path)
        except ModelFileError:
            pass           # keep the partial symbolic result
        method = f"{SYMBOLIC} (incomplete; onnx shape inference filled the rest)"
    else:
        method = SYMBOLIC
    _copy_shapes(inferred, model)
    return model, method


def _symbolic(model) -> tuple[Any, bool]:
    """(inferred copy, all shapes inferred) from onnxruntime's SymbolicShapeInference.

    Large weights stay in their external file (``load_external_data=False``): they become
    graph inputs of known shape in the copy, as the tool would otherwise try to read them.
    The loop is ``SymbolicShapeInference.infer_shapes`` without its last step, which saves
    ``sym_shape_infer_temp.onnx`` into the current directory when inference is incomplete:
    a library must never write into the user's working directory.
    """
    import onnx
    from onnx import helper

    SymbolicShapeInference = _symbolic_tool().SymbolicShapeInference   # noqa: N806 - a class
    if (opset_of(model) or 0) < 7:
        raise ValueError("opset < 7")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    external = [i for i in work.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    inline = [i for i in work.graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL]
    del work.graph.initializer[:]
    work.graph.initializer.extend(inline)
    work.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                            for i in external)
    ssi = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=True, guess_output_rank=False,
                                 verbose=0)
    ssi._preprocess(work)
    complete = False
    while ssi.run_:
        complete = ssi._infer_impl()
    ssi._update_output_from_vi()
    return ssi.out_mp_, bool(complete)


@functools.lru_cache(maxsize=1)
def _symbolic_tool():
    """``onnxruntime.tools.symbolic_shape_infer``, loaded from its file.

    Importing it by name runs ``onnxruntime/tools/__init__.py``, which imports torch whenever
    torch is installed (its PyTorch export helpers): ~4 s that static analysis never needs.
    The module itself only needs onnx, numpy and sympy.
    """
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for base in locations:
        path = Path(base) / "tools" / "symbolic_shape_infer.py"
        if path.is_file():
            file_spec = importlib.util.spec_from_file_location("_hf_edge_ort_symbolic_shape_infer", path)
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
            return module
    import onnxruntime.tools.symbolic_shape_infer as module  # layout changed: the slow way
    return module


def _copy_shapes(src, dst) -> None:
    """Put ``src``'s inferred value_info and output types onto ``dst`` (same node outputs)."""
    skip = {i.name for i in dst.graph.input} | {i.name for i in dst.graph.initializer}
    outs = {o.name: o for o in src.graph.output}
    del dst.graph.value_info[:]
    dst.graph.value_info.extend(v for v in src.graph.value_info if v.name not in skip)
    for o in dst.graph.output:
        if o.name in outs:
            o.type.CopyFrom(outs[o.name].type)


def _onnx_infer(model, path):
    import onnx
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError / RuntimeError with long texts
        raise ModelFileError(f"{path}: ONNX shape inference failed ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
