"""Export a PyTorch model to ONNX: dynamo exporter first, legacy TorchScript exporter as fallback.

Since torch 2.9 ``torch.onnx.export`` defaults to the dynamo (torch.export) exporter and no
longer falls back on its own; this module does the fallback and records which exporter ran
and why. Files are written atomically (temp name in the target directory, then rename), and
``onnx.checker`` runs on the temp file before it takes the final name.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import onnx
import torch
from torch import nn

from hackforge_edge.bundle import atomic_write_bytes
from hackforge_edge.errors import ExportError

EXPORTERS = ("auto", "dynamo", "legacy")
# protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph itself
SINGLE_FILE_LIMIT_BYTES = 2**31 - 2**27

DynamicAxes = Mapping[str, Mapping[int, str]]


@dataclass(frozen=True)
class ExportResult:
    """What ``export_onnx`` wrote and how.

    exporter: "dynamo" or "legacy"; fallback_reason: why the dynamo exporter was not used
    (None when it was, or "requested" when the caller asked for legacy); file_size_bytes:
    the .onnx file plus its external-data file, if any; export_input_shapes: the example
    shapes the graph was traced with (validate at other ones); duration_s: wall-clock seconds.
    """

    path: str
    exporter: str
    fallback_reason: str | None
    opset: int
    file_size_bytes: int
    external_data_path: str | None
    node_count: int
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    export_input_shapes: dict[str, list[int]]
    torch_version: str
    onnx_version: str
    duration_s: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dynamic-axis keys become strings)."""
        out = asdict(self)
        out["dynamic_axes"] = {
            name: {str(axis): label for axis, label in axes.items()}
            for name, axes in self.dynamic_axes.items()
        }
        return out


def image_classifier_axes(input_name: str = "input", output_name: str = "logits") -> dict:
    """Dynamic-axes spec for an NCHW image classifier: batch is dynamic, H and W are fixed."""
    return {input_name: {0: "batch"}, output_name: {0: "batch"}}


def text_classifier_axes(
    input_names: Sequence[str] = ("input_ids", "attention_mask"), output_name: str = "logits"
) -> dict:
    """Dynamic-axes spec for a sequence classifier: batch and sequence dynamic on every input."""
    spec = {name: {0: "batch", 1: "sequence"} for name in input_names}
    spec[output_name] = {0: "batch"}
    return spec


def onnx_file_size_bytes(path: str | os.PathLike) -> tuple[int, str | None]:
    """Size in bytes of an ONNX model file plus the external-data files it references.

    Returns (total_bytes, external_data_path or None; the first one if there are several).
    """
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    locations: list[str] = []
    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if loc and loc not in locations:
                locations.append(loc)
    total = path.stat().st_size
    for loc in locations:
        total += (path.parent / loc).stat().st_size
    return total, (str(path.parent / locations[0]) if locations else None)


def _all_tensors(model: onnx.ModelProto):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t


def _as_named_inputs(
    example_inputs: Any, input_names: Sequence[str] | None
) -> tuple[tuple, dict, list[str]]:
    """Split example inputs into (args, kwargs, names); names default to dict keys or "input"."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, Mapping):
        names = list(example_inputs)
        if input_names is not None and list(input_names) != names:
            raise ExportError(
                f"input_names {list(input_names)} differ from the example input keys {names}"
            )
        return (), dict(example_inputs), names
    args = tuple(example_inputs)
    if not all(isinstance(a, torch.Tensor) for a in args):
        raise ExportError("example_inputs must be tensors (a tuple or a name->tensor mapping)")
    if input_names is None:
        input_names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    if len(input_names) != len(args):
        raise ExportError(f"{len(input_names)} input names for {len(args)} example inputs")
    return args, {}, list(input_names)


def _check_dynamic_examples(
    tensors: dict[str, torch.Tensor], dynamic_axes: DynamicAxes
) -> None:
    for name, axes in dynamic_axes.items():
        if name not in tensors:
            continue  # an output name
        shape = tuple(tensors[name].shape)
        for axis, label in axes.items():
            if axis >= len(shape):
                raise ExportError(f"dynamic axis {axis} ({label}) out of range for {name} {shape}")
            if shape[axis] < 2:
                # torch.export specialises sizes 0 and 1, so the axis would silently be static
                raise ExportError(
                    f"example {name} has size {shape[axis]} on dynamic axis {label}; use >= 2"
                )


def _dynamic_shapes(
    args: tuple, kwargs: dict, names: list[str], dynamic_axes: DynamicAxes
) -> tuple | dict | None:
    """torch.export dynamic_shapes from a legacy dynamic_axes spec; one Dim per label, shared."""
    dims: dict[str, Any] = {}

    def spec(name: str) -> dict | None:
        axes = dynamic_axes.get(name)
        if not axes:
            return None
        return {
            axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()
        }

    if not any(dynamic_axes.get(n) for n in names):
        return None
    if kwargs:
        return {name: spec(name) for name in names}
    return tuple(spec(name) for name in names)


def _export_dynamo(model, args, kwargs, names, output_names, dynamic_axes, opset):
    program = torch.onnx.export(
        model,
        args,
        kwargs=kwargs or None,
        dynamo=True,
        input_names=names,
        output_names=list(output_names),
        dynamic_shapes=_dynamic_shapes(args, kwargs, names, dynamic_axes),
        opset_version=opset,
        verbose=False,
        external_data=False,
    )
    if program is None:  # pragma: no cover - dynamo=True always returns an ONNXProgram
        raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
    return program.model_proto


def _export_legacy(model, args, kwargs, names, output_names, dynamic_axes, opset, tmpdir: Path):
    legacy_axes = {name: dict(axes) for name, axes in dynamic_axes.items()}
    export_kwargs = dict(
        kwargs=kwargs or None,
        dynamo=False,
        input_names=names,
        output_names=list(output_names),
        dynamic_axes=legacy_axes or None,
        opset_version=opset,
        do_constant_folding=True,
    )
    with warnings.catch_warnings():
        # the legacy exporter's own DeprecationWarning says what ExportResult.exporter records
        warnings.simplefilter("ignore", DeprecationWarning)
        if _param_bytes(model) < SINGLE_FILE_LIMIT_BYTES:
            buf = io.BytesIO()
            torch.onnx.export(model, args, buf, **export_kwargs)
            return onnx.load_from_string(buf.getvalue())
        # >= 2 GiB cannot go through an in-memory protobuf; let torch write external data
        staging = tmpdir / "legacy.onnx"
        torch.onnx.export(model, args, str(staging), **export_kwargs)
        return onnx.load(str(staging), load_external_data=True)


def _param_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(err: BaseException, limit: int = 300) -> str:
    """One line naming the error and its root cause (torch wraps the real one in boilerplate)."""
    root = err
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = _ANSI.sub("", str(root))
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    name = type(err).__name__
    if root is not err:
        name = f"{name} ({type(root).__name__})"
    text = f"{name}: {line}" if line else name
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _save_atomic(proto: onnx.ModelProto, path: Path, single_file_limit_bytes: int) -> str | None:
    """Check and write ``proto`` to ``path``; returns the external-data path or None.

    Below ``single_file_limit_bytes`` the model goes to one file. Above it, weights go to
    ``<name>.data``: both files are written and checked inside a temp directory next to
    ``path``, then renamed data first, model last, so the final model name never points at
    missing weights.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proto_bytes = proto.ByteSize()
    except (ValueError, OverflowError):  # protobuf refuses to size a >= 2 GiB message
        proto_bytes = single_file_limit_bytes
    if proto_bytes < single_file_limit_bytes:
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as err:
            raise ExportError(f"onnx.checker rejected the export: {_first_line(err)}") from err
        atomic_write_bytes(path, proto.SerializeToString())
        stale = path.with_name(path.name + ".data")
        if stale.exists():  # a previous large export under the same name
            stale.unlink()
        return None
    data_name = path.name + ".data"
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp_model = staging / path.name
        onnx.save_model(
            proto, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
            location=data_name, size_threshold=1024,
        )
        try:
            onnx.checker.check_model(str(tmp_model))
        except onnx.checker.ValidationError as err:
            raise ExportError(f"onnx.checker rejected the export: {_first_line(err)}") from err
        os.replace(staging / data_name, path.parent / data_name)
        os.replace(tmp_model, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(path.parent / data_name)


def _run_exporters(exporter, model, args, kwargs, names, output_names, dynamic_axes, opset, tmp):
    """(proto, exporter used, fallback reason, exporter warnings) for the requested exporter."""
    fallback_reason: str | None = "requested"
    if exporter in ("auto", "dynamo"):
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                proto = _export_dynamo(
                    model, args, kwargs, names, output_names, dynamic_axes, opset
                )
            caught = sorted({(str(w.message).splitlines() or [""])[0][:200] for w in seen})
            return proto, "dynamo", None, caught[:20]
        except Exception as err:  # noqa: BLE001 - any dynamo failure means: try legacy
            if exporter == "dynamo":
                raise ExportError(f"dynamo export failed: {_first_line(err)}") from err
            fallback_reason = f"dynamo export failed: {_first_line(err)}"
    try:
        proto = _export_legacy(model, args, kwargs, names, output_names, dynamic_axes, opset, tmp)
    except Exception as err:  # noqa: BLE001 - report both failures in one line
        prefix = f"{fallback_reason}; " if fallback_reason != "requested" else ""
        raise ExportError(f"{prefix}legacy export failed: {_first_line(err)}") from err
    return proto, "legacy", fallback_reason, []


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | os.PathLike,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] = ("logits",),
    dynamic_axes: DynamicAxes | None = None,
    opset: int = 18,
    exporter: str = "auto",
    single_file_limit_bytes: int = SINGLE_FILE_LIMIT_BYTES,
) -> ExportResult:
    """Export ``model`` (in eval mode) to ``path`` and check it with ``onnx.checker``.

    example_inputs: a tensor, a tuple of tensors (positional, named by ``input_names``,
    default "input") or a name->tensor mapping passed as keyword arguments (text models:
    input_ids, attention_mask). Every dynamic axis must have size >= 2 in the example.
    dynamic_axes: legacy-style ``{name: {axis: label}}`` for inputs and outputs; default:
    axis 0 ("batch") of every input and output. Labels shared between inputs become one
    symbolic dimension. exporter: "auto" tries dynamo then legacy; "dynamo" or "legacy" forces
    one (a forced dynamo failure raises). Models whose weights serialise to
    ``single_file_limit_bytes`` or more get an external ``<name>.data`` file.

    The model's train/eval mode is restored afterwards; its weights are not modified.
    Raises ExportError when no exporter succeeds or the checker rejects the graph.
    """
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    path = Path(path)
    args, kwargs, names = _as_named_inputs(example_inputs, input_names)
    tensors = dict(zip(names, args)) if args else dict(kwargs)
    if dynamic_axes is None:
        dynamic_axes = {name: {0: "batch"} for name in [*names, *output_names]}
    _check_dynamic_examples(tensors, dynamic_axes)

    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            proto, used, fallback_reason, caught = _run_exporters(
                exporter, model, args, kwargs, names, output_names, dynamic_axes, opset, Path(tmp)
            )
    finally:
        model.train(was_training)

    external = _save_atomic(proto, path, single_file_limit_bytes)
    size_bytes, _ = onnx_file_size_bytes(path)
    opset_used = next(
        (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset
    )
    return ExportResult(
        path=str(path),
        exporter=used,
        fallback_reason=fallback_reason,
        opset=int(opset_used),
        file_size_bytes=int(size_bytes),
        external_data_path=external,
        node_count=len(proto.graph.node),
        input_names=[i.name for i in proto.graph.input],
        output_names=[o.name for o in proto.graph.output],
        dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
        export_input_shapes={name: list(t.shape) for name, t in tensors.items()},
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        duration_s=round(time.perf_counter() - started, 3),
        warnings=caught,
    )
