"""Turn request payloads into model feeds, refusing anything malformed with a 4xx.

Three payloads reach a model:

* image bytes (multipart upload or base64 in JSON): the header is read first and its size is
  checked against the limits *before* any pixel is decoded, then the image is decoded and
  preprocessed with the bundle's :class:`~hackforge_edge.data.preprocess.ImagePreprocess` (the exact
  training transform);
* ``{"inputs": {name: nested list, ...}}``: any model, one entry per model input;
* ``{"tensor": nested list, "dtype": "float32"}``: single-input models.

Every refusal is a :class:`RequestError` carrying an HTTP status and a short machine code.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hackforge_edge.errors import ServingError
from hackforge_edge.serving.settings import ServeSettings

# onnxruntime type strings -> numpy dtypes the server accepts in JSON tensors
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class RequestError(ServingError):
    """A request the server refuses: HTTP ``status`` (4xx) and a short ``code``."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (int, or str/None for a dynamic dim), dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    onnx_type: str

    @property
    def dtype(self) -> np.dtype | None:
        t = ORT_DTYPES.get(self.onnx_type)
        return np.dtype(t) if t is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape),
                "dtype": str(self.dtype) if self.dtype is not None else self.onnx_type}


def specs_of(nodes) -> list[TensorSpec]:
    """TensorSpecs from ``session.get_inputs()`` / ``get_outputs()``."""
    return [TensorSpec(n.name, tuple(n.shape), n.type) for n in nodes]


# --------------------------------------------------------------------------- JSON


def _reject_constant(token: str):
    raise RequestError(f"{token} not allowed: JSON numbers must be finite", 422, "nan_not_allowed")


def parse_json(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body; NaN/Infinity tokens are a 422, malformed JSON a 400."""
    if not body:
        raise RequestError("empty request body", 400, "empty_body")
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise RequestError(f"malformed JSON: {msg}", 400, "malformed_json") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply", 400, "malformed_json") from None
    if not isinstance(payload, dict):
        raise RequestError("the JSON body must be an object", 422, "invalid_payload")
    return payload


# --------------------------------------------------------------------------- images


def decode_base64(item: Any, index: int) -> bytes:
    """Base64 (optionally a ``data:image/...;base64,`` URL) -> bytes."""
    if not isinstance(item, str):
        raise RequestError(f"images[{index}] must be a base64 string", 422, "invalid_payload")
    if item.startswith("data:"):
        item = item.partition(",")[2]
    try:
        data = base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"images[{index}] is not valid base64", 422, "invalid_base64") from None
    if not data:
        raise RequestError(f"images[{index}] is empty", 422, "invalid_image")
    return data


# DCT-scaled decoding stops at this multiple of the model's input side (benchmarks/
# jpeg_fast_decode.py): decoding straight to the input size (1) changed the predicted class of
# 5 of 200 tiles for a 2x-sized JPEG; stopping at 2x the input keeps the bilinear resize's
# antialiasing in the path
DRAFT_MARGIN = 2


def load_image(data: bytes, settings: ServeSettings, what: str = "image",
               target_size: tuple[int, int] | None = None):
    """Decode image bytes into a loaded PIL image, checking its header size first.

    ``Image.open`` reads only the header; the width/height limits (pixels) are checked before
    ``load()`` allocates anything, so a tiny file announcing 20000x20000 costs nothing.
    With ``target_size`` (height, width) and ``settings.fast_jpeg``, a JPEG at least four times
    that size is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg's scaled IDCT
    through Pillow's ``draft``; never below ``DRAFT_MARGIN`` x ``target_size``), which skips
    most of the decoding work.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(f"{what} is empty", 422, "invalid_image")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise RequestError(f"{what} is too large (decompression bomb guard)", 413,
                           "image_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise RequestError(f"{what} is not a readable image", 422, "invalid_image") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise RequestError(f"{what} has no pixels ({w}x{h})", 422, "invalid_image")
    if max(w, h) > settings.max_image_side or w * h > settings.max_image_pixels:
        img.close()
        raise RequestError(f"{what} is {w}x{h} pixels; the limits are {settings.max_image_side} px a "
                           f"side and {settings.max_image_pixels} pixels", 413, "image_too_large")
    if target_size is not None and settings.fast_jpeg and img.format == "JPEG":
        th, tw = target_size
        if w >= 2 * DRAFT_MARGIN * tw and h >= 2 * DRAFT_MARGIN * th:
            # the largest 1/2^k scale still >= DRAFT_MARGIN x the input: the training resize
            # then still does the last (antialiased) reduction itself
            img.draft("RGB", (DRAFT_MARGIN * tw, DRAFT_MARGIN * th))
    try:
        img.load()
    except Image.DecompressionBombError:
        raise RequestError(f"{what} is too large (decompression bomb guard)", 413,
                           "image_too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        # truncated or corrupt data: PIL raises OSError("image file is truncated") and kin
        raise RequestError(f"{what} is truncated or corrupt", 422, "invalid_image") from None
    return img


def images_to_batch(blobs: Sequence[bytes], preprocess, settings: ServeSettings) -> np.ndarray:
    """Image bytes -> float32 batch (N, C, H, W) via the bundle's training preprocessing."""
    if not blobs:
        raise RequestError("no image in the request", 422, "invalid_payload")
    if len(blobs) > settings.max_batch:
        raise RequestError(f"{len(blobs)} images; the maximum batch is {settings.max_batch}", 413,
                           "batch_too_large")
    h, w = preprocess.image_size
    batch = np.empty((len(blobs), 3, h, w), np.float32)  # each image written in place: no stack copy
    for i, blob in enumerate(blobs):
        img = load_image(blob, settings, what=f"image {i}", target_size=(h, w))
        try:
            preprocess.pil_to_chw(img, out=batch[i])
        except (OSError, ValueError) as exc:
            raise RequestError(f"image {i} could not be converted: {exc}", 422, "invalid_image") from None
        finally:
            img.close()
    return batch.astype(np.dtype(preprocess.dtype), copy=False)


# --------------------------------------------------------------------------- tensors


def binary_feed(body: bytes, headers: Mapping[str, str], inputs: Sequence[TensorSpec],
                settings: ServeSettings) -> dict[str, np.ndarray]:
    """``application/octet-stream`` body -> feed, for clients that preprocess themselves.

    Headers: ``X-Tensor-Shape: 1,3,224,224`` (required), ``X-Tensor-Dtype`` (default: the
    input's dtype), ``X-Tensor-Name`` (default: the model's only input). The body is the
    C-order little-endian tensor bytes; the array is a view on the body (no copy).
    """
    by_name = {s.name: s for s in inputs}
    name = headers.get("x-tensor-name") or (inputs[0].name if len(inputs) == 1 else None)
    if name is None:
        raise RequestError(f"this model takes {', '.join(by_name)}: name the input in X-Tensor-Name "
                           "(one input per binary request)", 422, "invalid_inputs")
    spec = by_name.get(name)
    if spec is None:
        raise RequestError(f"unknown input {name!r} (model inputs: {', '.join(by_name)})", 422,
                           "invalid_inputs")
    if len(inputs) != 1:
        raise RequestError(f"binary requests work for single-input models; this one takes "
                           f"{', '.join(by_name)}: send JSON", 422, "invalid_inputs")
    try:
        dtype = np.dtype(headers.get("x-tensor-dtype") or spec.dtype).newbyteorder("<")
    except TypeError:
        raise RequestError(f"unknown X-Tensor-Dtype {headers.get('x-tensor-dtype')!r}", 422,
                           "dtype_mismatch") from None
    if spec.dtype is not None and dtype != spec.dtype.newbyteorder("<"):
        raise RequestError(f"input {name!r} expects {spec.dtype}, got X-Tensor-Dtype {dtype.name}", 422,
                           "dtype_mismatch")
    raw_shape = headers.get("x-tensor-shape", "")
    try:
        shape = tuple(int(d) for d in raw_shape.replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise RequestError(f"X-Tensor-Shape {raw_shape!r}: give positive dims, e.g. 1,3,224,224", 422,
                           "shape_mismatch")
    if len(body) != dtype.itemsize * math.prod(shape):
        raise RequestError(f"body has {len(body)} bytes; shape {list(shape)} of {dtype.name} needs "
                           f"{dtype.itemsize * math.prod(shape)}", 422, "shape_mismatch")
    arr = np.frombuffer(body, dtype=dtype).reshape(shape)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise RequestError(f"NaN/Infinity not allowed in input {name!r}", 422, "nan_not_allowed")
    _check_shape(name, arr, spec, settings, {})
    return {name: arr}


def _to_array(name: str, value: Any, spec: TensorSpec) -> np.ndarray:
    if spec.dtype is None:
        raise RequestError(f"input {name!r} has type {spec.onnx_type}, which JSON tensors cannot carry",
                           422, "unsupported_dtype")
    if not isinstance(value, list):
        raise RequestError(f"input {name!r} must be a nested list of numbers", 422, "invalid_tensor")
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"input {name!r} is ragged or not numeric", 422, "invalid_tensor") from None
    if raw.dtype.kind not in "biuf":
        raise RequestError(f"input {name!r} must contain only numbers (found {raw.dtype.kind!r} data, "
                           "e.g. strings, nulls or ragged lists)", 422, "invalid_tensor")
    target = spec.dtype
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise RequestError(f"NaN/Infinity not allowed in input {name!r}", 422, "nan_not_allowed")
    if target.kind in "iub":
        if raw.dtype.kind == "f":
            if raw.size and not np.all(raw == np.round(raw)):
                raise RequestError(f"input {name!r} expects {target} but got fractional numbers", 422,
                                   "dtype_mismatch")
        if target.kind in "iu" and raw.size:
            info = np.iinfo(target)
            if raw.min() < info.min or raw.max() > info.max:
                raise RequestError(f"input {name!r}: values out of range for {target}", 422, "out_of_range")
    arr = raw.astype(target)
    if target.kind == "f" and not np.isfinite(arr).all():
        raise RequestError(f"input {name!r}: values overflow {target}", 422, "out_of_range")
    return np.ascontiguousarray(arr)


def _check_shape(name: str, arr: np.ndarray, spec: TensorSpec, settings: ServeSettings,
                 bound: dict[str, int]) -> None:
    want = spec.shape
    if arr.ndim != len(want):
        raise RequestError(f"input {name!r} has shape {list(arr.shape)}; the model expects rank "
                           f"{len(want)} {list(want)}", 422, "shape_mismatch")
    if arr.ndim and arr.shape[0] > settings.max_batch:
        raise RequestError(f"batch of {arr.shape[0]}; the maximum batch is {settings.max_batch}", 413,
                           "batch_too_large")
    for axis, (got, dim) in enumerate(zip(arr.shape, want)):
        if got == 0:
            raise RequestError(f"input {name!r} is empty along axis {axis}", 422, "shape_mismatch")
        if isinstance(dim, int) and dim > 0 and got != dim:
            raise RequestError(f"input {name!r} has shape {list(arr.shape)}; the model expects "
                               f"{list(want)}", 422, "shape_mismatch")
        if isinstance(dim, str) and dim:
            # a symbolic dim shared by several inputs (batch, sequence) must agree across them
            if bound.setdefault(dim, got) != got:
                raise RequestError(f"input {name!r} axis {axis} ({dim}) is {got} but another input has "
                                   f"{bound[dim]}", 422, "shape_mismatch")


def tensor_feed(payload: Mapping[str, Any], inputs: Sequence[TensorSpec],
                settings: ServeSettings) -> dict[str, np.ndarray]:
    """``{"inputs": {...}}`` or ``{"tensor": ..., "dtype": ...}`` -> validated ``session.run`` feed."""
    by_name = {s.name: s for s in inputs}
    if "inputs" in payload:
        given = payload["inputs"]
        if not isinstance(given, dict) or not given:
            raise RequestError('"inputs" must be an object mapping input names to nested lists', 422,
                               "invalid_payload")
        declared = payload.get("dtypes") or {}
        if not isinstance(declared, dict):
            raise RequestError('"dtypes" must be an object mapping input names to dtypes', 422,
                               "invalid_payload")
    elif "tensor" in payload:
        if len(inputs) != 1:
            raise RequestError(f'"tensor" works for single-input models; this one takes '
                               f'{", ".join(by_name)}: send {{"inputs": {{name: ...}}}}', 422,
                               "invalid_payload")
        given = {inputs[0].name: payload["tensor"]}
        declared = {inputs[0].name: payload["dtype"]} if payload.get("dtype") is not None else {}
    else:
        raise RequestError('expected "images", "texts", "rows", "inputs" or "tensor" in the JSON body', 422,
                           "invalid_payload")
    unknown = sorted(set(given) - set(by_name))
    missing = sorted(set(by_name) - set(given))
    if unknown or missing:
        parts = ([f"unknown input(s) {', '.join(map(repr, unknown))}"] if unknown else []) + \
                ([f"missing input(s) {', '.join(map(repr, missing))}"] if missing else [])
        raise RequestError("; ".join(parts) + f" (model inputs: {', '.join(by_name)})", 422,
                           "invalid_inputs")
    feed: dict[str, np.ndarray] = {}
    bound: dict[str, int] = {}
    for spec in inputs:
        want = declared.get(spec.name)
        if want is not None:
            try:
                asked = np.dtype(str(want))
            except TypeError:
                raise RequestError(f"unknown dtype {want!r} for input {spec.name!r}", 422,
                                   "dtype_mismatch") from None
            if spec.dtype is not None and asked != spec.dtype:
                raise RequestError(f"input {spec.name!r} expects {spec.dtype}, got dtype {asked}", 422,
                                   "dtype_mismatch")
        arr = _to_array(spec.name, given[spec.name], spec)
        _check_shape(spec.name, arr, spec, settings, bound)
        feed[spec.name] = arr
    batch = {a.shape[0] for a in feed.values() if a.ndim}
    if len(batch) > 1:
        raise RequestError(f"inputs disagree on the batch size: {sorted(batch)}", 422, "shape_mismatch")
    return feed


def dummy_feed(inputs: Sequence[TensorSpec], preprocess=None) -> dict[str, np.ndarray]:
    """A zero feed of batch 1 for warm-up: dynamic dims are 1, or the image size for images."""
    feed = {}
    for spec in inputs:
        shape = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif (preprocess is not None and spec.name == preprocess.input_name and len(spec.shape) == 4
                  and axis in (2, 3)):
                shape.append(int(preprocess.image_size[axis - 2]))
            else:
                shape.append(1)
        feed[spec.name] = np.zeros(shape, dtype=spec.dtype if spec.dtype is not None else np.float32)
    return feed


def finite_or_none(x: float) -> float | None:
    """JSON cannot carry NaN: a non-finite model output is reported as null."""
    return float(x) if math.isfinite(x) else None
