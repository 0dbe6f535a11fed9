"""A Triton Inference Server model repository from a run bundle.

Hospitals that outgrow one box run NVIDIA Triton; the toolkit hands them the layout Triton
loads rather than a home-made fleet::

    model_repository/
      <name>/config.pbtxt          inputs, outputs, dtypes, dims, batching, backend, instances
      <name>/labels.txt            one class name per line (Triton's label_filename)
      <name>/1/model.onnx          the bundle's validated FP32 export (+ model.onnx.data)
      <name>/PREPROCESSING.md      what a client must do to an image before sending it
      <name>/preprocess.json       the same, machine-readable (the bundle's file)

The config is written in protobuf text format from Triton's own ``ModelConfig`` message when
the ``tritonclient`` package is installed (tests parse it back through that schema); the
text is simple enough to write directly otherwise, so the base install can export too.
Only onnxruntime reads the model here: nothing needs a GPU or a Triton server.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hackforge_edge.bundle.reader import Bundle
from hackforge_edge.errors import UsageError

# ONNX element type name (onnxruntime's "tensor(float)") -> Triton DataType
_TRITON_DTYPES = {
    "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64",
    "tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(int8)": "TYPE_INT8",
    "tensor(uint8)": "TYPE_UINT8", "tensor(bool)": "TYPE_BOOL", "tensor(bfloat16)": "TYPE_BF16",
    "tensor(int16)": "TYPE_INT16", "tensor(uint16)": "TYPE_UINT16", "tensor(string)": "TYPE_STRING",
}
INSTANCE_KINDS = ("cpu", "gpu", "auto")
TRT_PRECISIONS = ("FP32", "FP16")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class TritonOptions:
    """How the repository is configured. ``max_batch_size`` 0 turns Triton's batching off."""

    name: str | None = None
    max_batch_size: int = 8
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    instance_kind: str = "auto"      # cpu | gpu | auto (Triton picks GPU when present)
    instance_count: int = 1
    tensorrt: bool = False           # add the TensorRT execution accelerator (GPU instances)
    tensorrt_precision: str = "FP16"
    tensorrt_workspace_bytes: int = 1 << 30

    def check(self) -> None:
        problems = []
        if self.name is not None and not _NAME_RE.match(self.name):
            problems.append(f"--name {self.name!r}: use letters, digits, '_', '-' or '.'")
        if self.max_batch_size < 0:
            problems.append(f"--max-batch-size must be >= 0, got {self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            problems.append(f"--max-queue-delay-us must be >= 0, got {self.max_queue_delay_us}")
        if self.instance_kind not in INSTANCE_KINDS:
            problems.append(f"--instance-kind must be one of {', '.join(INSTANCE_KINDS)}, "
                            f"got {self.instance_kind!r}")
        if self.instance_count < 1:
            problems.append(f"--instance-count must be >= 1, got {self.instance_count}")
        if self.tensorrt_precision not in TRT_PRECISIONS:
            problems.append(f"--tensorrt-precision must be one of {', '.join(TRT_PRECISIONS)}")
        if self.tensorrt and self.instance_kind == "cpu":
            problems.append("--tensorrt needs GPU instances (not --instance-kind cpu)")
        if problems:
            raise UsageError("; ".join(problems))


@dataclass(frozen=True)
class TensorDecl:
    name: str
    data_type: str
    dims: list[int]        # without the batch dimension when the model batches; -1 = variable


def _declare(io_args: list[Any], batched: bool, what: str) -> list[TensorDecl]:
    out = []
    for a in io_args:
        dtype = _TRITON_DTYPES.get(a.type)
        if dtype is None:
            raise UsageError(f"model {what} {a.name!r} has type {a.type}, which Triton cannot take")
        dims = [d if isinstance(d, int) and d > 0 else -1 for d in a.shape]
        if batched:
            dims = dims[1:]
        out.append(TensorDecl(a.name, dtype, dims))
    return out


def _batch_axis_is_dynamic(io_args: list[Any]) -> bool:
    """Triton's batching needs a variable first dimension on every input and output."""
    return all(a.shape and not (isinstance(a.shape[0], int) and a.shape[0] > 0) for a in io_args)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_block(kind: str, t: TensorDecl, extra: list[str]) -> str:
    fields = [f"name: {_q(t.name)}", f"data_type: {t.data_type}", *extra,
              f"dims: [ {', '.join(map(str, t.dims))} ]"]
    body = "".join(f"    {f}\n" for f in fields)
    return f"{kind} [\n  {{\n{body}  }}\n]"


def config_text(name: str, inputs: list[TensorDecl], outputs: list[TensorDecl], opts: TritonOptions,
                *, label_output: str | None, image_input: str | None) -> str:
    """``config.pbtxt`` in protobuf text format (Triton's ModelConfig message)."""
    lines = [f"name: {_q(name)}", 'backend: "onnxruntime"', f"max_batch_size: {opts.max_batch_size}"]
    for t in inputs:
        fmt = ["format: FORMAT_NCHW"] if t.name == image_input and len(t.dims) == 3 else []
        lines.append(_tensor_block("input", t, fmt))
    for t in outputs:
        label = ['label_filename: "labels.txt"'] if t.name == label_output else []
        lines.append(_tensor_block("output", t, label))
    if opts.max_batch_size > 0 and opts.dynamic_batching:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {opts.max_queue_delay_us}\n}}")
    kind = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "auto": "KIND_AUTO"}[opts.instance_kind]
    lines.append(f"instance_group [\n  {{\n    count: {opts.instance_count}\n    kind: {kind}\n  }}\n]")
    if opts.tensorrt:
        lines.append(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n"
            "      {\n        name: \"tensorrt\"\n"
            f"        parameters {{ key: \"precision_mode\" value: \"{opts.tensorrt_precision}\" }}\n"
            f"        parameters {{ key: \"max_workspace_size_bytes\" value: \"{opts.tensorrt_workspace_bytes}\" }}\n"
            "      }\n    ]\n  }\n}")
    return "\n".join(lines) + "\n"


def _preprocessing_note(pre: dict[str, Any] | None, inputs: list[TensorDecl], has_tokenizer: bool) -> str:
    if pre and pre.get("kind") == "image":
        h, w = pre["image_size"]
        return (
            "# Preprocessing (done by the client before calling Triton)\n\n"
            f"Triton receives the tensor `{pre.get('input_name', 'input')}` as float32 "
            f"{pre.get('layout', 'NCHW')} [N, 3, {h}, {w}]. Turn each image into it exactly as "
            "training did (hackforge_edge.data.preprocess.ImagePreprocess):\n\n"
            f"1. decode to {pre.get('color', 'RGB')} uint8, resize to {w}x{h} "
            f"({pre.get('resize', 'bilinear')}, Pillow);\n"
            f"2. x = (pixel / 255 - mean) / std per channel, mean {pre['mean']}, std {pre['std']};\n"
            "3. transpose HWC -> CHW and stack a batch.\n\n"
            "In Python with the toolkit installed (no torch needed):\n\n"
            "```python\nimport json\nfrom PIL import Image\n"
            "from hackforge_edge.data.preprocess import ImagePreprocess\n"
            "pre = ImagePreprocess.from_json(json.load(open('preprocess.json')))\n"
            "x = pre.pil_to_chw(Image.open('patch.png'))[None]   # float32 [1, 3, H, W]\n```\n\n"
            "`hf-edge serve` does this server-side; Triton serves the raw model only.\n")
    names = ", ".join(f"`{t.name}` ({t.data_type}, dims {t.dims})" for t in inputs)
    note = "# Preprocessing\n\nThe model takes " + names + " directly.\n"
    if has_tokenizer:
        note += ("\nText: tokenize with the `tokenizers` library and the `tokenizer.json` copied "
                 "beside this file (`Tokenizer.from_file`), padding/truncating as the bundle's "
                 "preprocess.json says; send `input_ids` and `attention_mask` as int64.\n")
    return note


def export_triton(bundle_path: str | Path, out: str | Path, opts: TritonOptions = TritonOptions(),
                  *, allow_incomplete: bool = False, overwrite: bool = False) -> Path:
    """Write a Triton model repository for the bundle at ``bundle_path`` under ``out``.

    The bundle is opened (and verified) through :meth:`Bundle.open`; the model is loaded once
    with onnxruntime to read its input/output names, dtypes and shapes. Returns the model's
    directory ``out/<name>``.
    """
    import onnxruntime as ort

    opts.check()
    b = Bundle.open(bundle_path, allow_incomplete=allow_incomplete)
    if not b.model_path.is_file():
        raise UsageError(f"{b.dir}: no model.onnx in the bundle")
    name = opts.name or re.sub(r"[^A-Za-z0-9_.-]", "_", b.dir.resolve().name)
    sess = ort.InferenceSession(str(b.model_path), providers=["CPUExecutionProvider"])
    ins, outs = sess.get_inputs(), sess.get_outputs()
    batched = opts.max_batch_size > 0
    if batched and not _batch_axis_is_dynamic([*ins, *outs]):
        raise UsageError(f"{b.model_path}: the first dimension is not a variable batch axis on every "
                         "input and output; pass --max-batch-size 0")
    inputs, outputs = _declare(ins, batched, "input"), _declare(outs, batched, "output")
    labels = b.read_json_if_present("labels.json")
    pre = b.read_json_if_present("preprocess.json")
    label_output = outputs[0].name if labels and len(outputs) == 1 else None
    image_input = pre.get("input_name", "input") if pre and pre.get("kind") == "image" else None

    model_dir = Path(out) / name
    if model_dir.exists():
        if not overwrite:
            raise UsageError(f"{model_dir} exists (pass --overwrite to replace it)")
        shutil.rmtree(model_dir)
    (model_dir / "1").mkdir(parents=True)
    shutil.copy2(b.model_path, model_dir / "1" / "model.onnx")
    for extra in sorted(b.dir.glob("model.onnx.data")):   # external weights travel with the model
        shutil.copy2(extra, model_dir / "1" / extra.name)
    (model_dir / "config.pbtxt").write_text(
        config_text(name, inputs, outputs, opts, label_output=label_output, image_input=image_input),
        encoding="utf-8")
    if label_output:
        (model_dir / "labels.txt").write_text("".join(f"{x}\n" for x in labels), encoding="utf-8")
    for sidecar in ("preprocess.json", "tokenizer.json"):
        if b.has(sidecar):
            shutil.copy2(b.path(sidecar), model_dir / sidecar)
    (model_dir / "PREPROCESSING.md").write_text(
        _preprocessing_note(pre, inputs, b.has("tokenizer.json")), encoding="utf-8")
    return model_dir
