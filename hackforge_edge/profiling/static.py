"""Static analysis of an ONNX graph: MACs, FLOPs, bytes moved, parameters, peak activations.

Conventions: 1 MAC = 2 FLOPs. ``bytes_moved`` of a node = bytes of its inputs (weights
included) + bytes of its outputs, i.e. the DRAM traffic if nothing stayed in cache. View ops
(Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) alias their input and move nothing;
shape arithmetic on tiny int64 tensors is counted as ``shape`` with no cost. Ops that cannot
be costed are listed in ``uncosted_ops`` with counts, never silently counted as zero.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hackforge_edge.errors import ModelFileError

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")

# FLOPs per output element for elementwise ops (transcendentals cost a few)
_ELEMENTWISE = {
    **{op: 1 for op in (
        "Add", "Sub", "Mul", "Div", "Relu", "Clip", "Neg", "Abs", "Max", "Min", "Sum", "Mean",
        "Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And",
        "Or", "Xor", "Cast", "CastLike", "Sign", "Floor", "Ceil", "Round", "Mod", "BitShift",
        "IsNaN", "IsInf", "LeakyRelu", "PRelu", "ThresholdedRelu", "Shrink", "BitwiseAnd",
        "BitwiseOr", "BitwiseNot", "BitwiseXor")},
    **{op: 4 for op in (
        "Exp", "Log", "Tanh", "Sigmoid", "Erf", "Gelu", "Pow", "Sqrt", "Reciprocal",
        "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Mish", "Elu", "Selu", "Celu",
        "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
        "FastGelu", "BiasGelu", "QuickGelu", "BiasAdd", "Swish")},
    **{op: 2 for op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")},
}
_NORM = {"BatchNormalization": 2, "LayerNormalization": 8, "InstanceNormalization": 8,
         "GroupNormalization": 8, "LRN": 5, "Softmax": 5, "LogSoftmax": 6, "Hardmax": 2,
         "SkipLayerNormalization": 9, "SimplifiedLayerNormalization": 6,
         "SkipSimplifiedLayerNormalization": 7, "RMSNormalization": 6, "MeanVarianceNormalization": 8,
         "LpNormalization": 3, "BiasSoftmax": 6}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
           "CumSum", "TopK", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
_POOL = {"MaxPool", "AveragePool", "LpPool", "MaxRoiPool", "RoiAlign", "MaxUnpool"}
_DATA = {"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Pad",
         "Expand", "Tile", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "ScatterND",
         "ScatterElements", "Scatter", "Trilu", "NonZero", "OneHot", "Compress",
         "ReverseSequence", "EyeLike", "Col2Im", "GridSample", "SplitToSequence",
         "ConcatFromSequence", "Unique", "NonMaxSuppression", "Det", "CenterCropPad",
         "EmbedLayerNormalization", "Bernoulli", "RandomNormalLike", "RandomUniformLike"}
_VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Optional",
         "OptionalGetElement"}
_SHAPE = {"Shape", "Size", "Constant", "ConstantOfShape", "Range"}
_CONV = {"Conv", "FusedConv", "ConvInteger", "QLinearConv", "NhwcConv", "ConvTranspose"}
_MATMUL = {"MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "MatMulNBits",
           "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
_GEMM = {"Gemm", "FusedGemm", "QGemm"}
_ATTENTION = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}
_RNN = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Categories whose time is dominated by arithmetic (the rest is memory traffic)
COMPUTE_CATEGORIES = ("conv", "dwconv", "gemm", "attention")


@dataclass
class LayerCost:
    """Cost of one ONNX node (bytes, MACs and FLOPs are plain counts)."""

    name: str
    op_type: str
    category: str       # conv dwconv gemm attention elementwise norm reduce pool data view shape uncosted
    macs: int
    flops: int
    bytes_moved: int
    weight_bytes: int
    params: int
    output_shape: list[int] | None
    inputs: list[str] = field(default_factory=list, repr=False)
    outputs: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "op_type": self.op_type, "category": self.category,
                "macs": self.macs, "flops": self.flops, "bytes_moved": self.bytes_moved,
                "weight_bytes": self.weight_bytes, "params": self.params,
                "output_shape": self.output_shape}


@dataclass
class StaticAnalysis:
    """Per-node and total costs of an ONNX model at fixed input shapes."""

    path: str
    batch: int
    seq_len: int | None
    input_shapes: dict[str, list[int]]
    layers: list[LayerCost]
    uncosted_ops: dict[str, int]
    peak_activation_bytes: int
    weight_bytes: int
    params: int
    warnings: list[str]
    opset: int | None
    consumers: dict[str, list[int]] = field(default_factory=dict, repr=False)
    graph_outputs: list[str] = field(default_factory=list, repr=False)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def bytes_moved(self) -> int:
        return sum(layer.bytes_moved for layer in self.layers)

    def by_op_type(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "macs": 0, "flops": 0,
                                                              "bytes_moved": 0})
        for layer in self.layers:
            d = out[layer.op_type]
            d["count"] += 1
            d["macs"] += layer.macs
            d["flops"] += layer.flops
            d["bytes_moved"] += layer.bytes_moved
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["flops"]))

    def totals(self) -> dict[str, int]:
        return {"macs": self.macs, "flops": self.flops, "params": self.params,
                "weight_bytes": self.weight_bytes, "bytes_moved": self.bytes_moved,
                "peak_activation_bytes": self.peak_activation_bytes, "nodes": len(self.layers)}

    def to_json(self, *, layers: bool = False, top: int = 10) -> dict:
        d = {"kind": "static", "method": "onnx-shape-inference (1 MAC = 2 FLOPs)",
             "path": self.path, "batch": self.batch, "seq_len": self.seq_len,
             "input_shapes": self.input_shapes, "opset": self.opset, "totals": self.totals(),
             "by_op_type": self.by_op_type(), "uncosted_ops": dict(self.uncosted_ops),
             "warnings": list(self.warnings),
             "top_layers": [x.to_json() for x in
                            sorted(self.layers, key=lambda x: -x.flops)[:top]]}
        if layers:
            d["layers"] = [x.to_json() for x in self.layers]
        return d


# ---- input handling ----------------------------------------------------------------------------
def parse_input_shapes(specs) -> dict[str, list[int]]:
    """``{"x": [1, 3, 224, 224]}`` or ``["x=1x3x224x224", ...]`` -> dict (UsageError-free)."""
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
    except Exception as exc:  # protobuf raises a few undocumented types on garbage input
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.opset_import:
        raise ModelFileError(f"{path}: not an ONNX model (empty graph or no opset; truncated?)")
    return model


def _opset(model) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def graph_inputs(model) -> list[Any]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


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
            shape = list(input_shapes[inp.name])
            if dims and len(shape) != len(dims):
                raise ModelFileError(f"{path}: --input-shape {inp.name} has rank {len(shape)}, "
                                     f"the model input has rank {len(dims)}")
            # an override may fill symbolic dims, never contradict fixed ones (the model would
            # refuse such an input, and its cost would be made up)
            for j, (d, given) in enumerate(zip(dims, shape)):
                if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != given:
                    raise ModelFileError(
                        f"{path}: --input-shape {inp.name} dim {j} is {given}, but the model fixes "
                        f"it at {d.dim_value} (only symbolic dims can be set)")
            out[inp.name] = shape
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


def _fix_and_infer(model, shapes: dict[str, list[int]], path):
    import onnx

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
    model = _infer(model, path)
    # Exporters compute reshape targets from Shape ops at run time; onnx's data propagation
    # stops at some of them (Squeeze, Range, ...). With concrete input shapes those subgraphs
    # are constants: fold them on a copy and infer again until nothing changes.
    for _ in range(8):
        folded, changed = _fold_shape_subgraphs(model)
        if not changed:
            break
        folded = _infer(folded, path)
        # carry the new shapes back onto the full graph (its nodes are what we cost)
        known = {vi.name: vi for vi in folded.graph.value_info}
        for init in folded.graph.initializer:
            if init.name not in known:
                known[init.name] = onnx.helper.make_tensor_value_info(
                    init.name, init.data_type, list(init.dims))
        del model.graph.value_info[:]
        outs = {o.name for o in model.graph.output}
        model.graph.value_info.extend(v for n, v in known.items() if n not in outs)
        for o in model.graph.output:
            if o.name in known:
                o.type.CopyFrom(known[o.name].type)
        model = _infer(model, path)
    return model


def _infer(model, path):
    import onnx
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / RuntimeError with long texts
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: ONNX shape inference failed ({first})") from None


_FOLD_MAX_ELEMS = 4096
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
            "Multinomial", "Bernoulli", "If", "Loop", "Scan"}


def _fold_shape_subgraphs(model):
    """Copy of ``model`` with small constant-valued subgraphs replaced by initializers."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    shapes = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = [d.dim_value for d in tt.shape.dim]
    values: dict[str, Any] = {}
    for init in g.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL and _prod(init.dims) <= _FOLD_MAX_ELEMS:
            values[init.name] = numpy_helper.to_array(init)
    folded_nodes = set()
    for idx, node in enumerate(g.node):
        outs = None
        try:
            if node.op_type == "Shape" and node.input[0] in shapes:
                shp = shapes[node.input[0]]
                start, end = _attr(node, "start", 0), _attr(node, "end", None)
                outs = [np.array(shp[start:end], dtype=np.int64)]
            elif node.op_type == "Size" and node.input[0] in shapes:
                outs = [np.array(_prod(shapes[node.input[0]]), dtype=np.int64)]
            elif node.op_type not in _NO_FOLD and node.domain in ("", "ai.onnx") and \
                    all((not n) or n in values for n in node.input):
                single = onnx.helper.make_model(
                    onnx.helper.make_graph([node], "fold", [], [
                        onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                        for o in node.output if o]),
                    opset_imports=list(model.opset_import))
                ev = ReferenceEvaluator(single)
                outs = ev.run(None, {n: values[n] for n in node.input if n})
        except Exception:  # not foldable here; shape inference keeps what it knows
            outs = None
        if outs is None:
            continue
        named = [o for o in node.output if o]
        if len(outs) != len(named) or any(np.asarray(v).size > _FOLD_MAX_ELEMS for v in outs):
            continue
        for o, v in zip(named, outs):
            values[o] = np.asarray(v)
        folded_nodes.add(idx)
    if not folded_nodes:
        return model, False
    new = onnx.ModelProto()
    new.CopyFrom(model)
    keep = [n for i, n in enumerate(g.node) if i not in folded_nodes]
    produced = {o for i in folded_nodes for o in g.node[i].output if o}
    del new.graph.node[:]
    new.graph.node.extend(keep)
    del new.graph.value_info[:]     # stale symbolic dims (unk__N) would survive the merge
    for out in new.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    existing = {i.name for i in new.graph.initializer}
    new.graph.initializer.extend(numpy_helper.from_array(values[o], name=o)
                                 for o in produced if o not in existing)
    # only a change if some folded value feeds a node that is still there
    needed = {n for node in keep for n in node.input}
    return new, bool(produced & needed) and len(keep) < len(g.node)


# ---- per-node costs --------------------------------------------------------------------------
def _itemsize(elem_type: int) -> float:
    from onnx import TensorProto, helper
    if elem_type in (TensorProto.INT4, TensorProto.UINT4) if hasattr(TensorProto, "INT4") else ():
        return 0.5
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except Exception:  # strings / undefined
        return 0


def _prod(xs) -> int:
    return int(math.prod(xs)) if xs is not None else 0


def _attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _einsum_macs(eq: str, shapes: list[list[int]]) -> int | None:
    eq = eq.replace(" ", "")
    lhs = eq.split("->")[0]
    terms = lhs.split(",")
    if "..." in eq or len(terms) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for term, shp in zip(terms, shapes):
        if shp is None or len(term) != len(shp):
            return None
        for ch, n in zip(term, shp):
            sizes[ch] = max(sizes.get(ch, 1), n)
    return _prod(sizes.values())


def _cost(node, shape_of, is_const) -> tuple[str, int, int] | None:
    """(category, macs, flops) or None when the op or its shapes cannot be costed."""
    op = node.op_type
    ins = [shape_of(n) if n else None for n in node.input]
    outs = [shape_of(n) for n in node.output]
    out0 = outs[0] if outs else None
    out_elems = _prod(out0) if out0 is not None else None

    if op in _CONV:
        w_idx = 3 if op == "QLinearConv" else 1
        w = ins[w_idx] if len(ins) > w_idx else None
        x = ins[0]
        if w is None or out0 is None or x is None:
            return None
        group = int(_attr(node, "group", 1) or 1)
        if op == "ConvTranspose":
            macs = _prod(x) * _prod(w[1:])
        else:
            macs = out_elems * _prod(w[1:])
        cin_per_group = w[0] if op == "ConvTranspose" else w[1]
        cat = "dwconv" if group > 1 and cin_per_group <= 4 else "conv"
        bias = out_elems if len(node.input) > 2 and node.input[2] else 0
        return cat, macs, 2 * macs + bias
    if op in _GEMM:
        a, b = ins[0], ins[1]
        if a is None or b is None or len(a) != 2 or len(b) != 2:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        macs = m * k * n
        return "gemm", macs, 2 * macs + (m * n if len(ins) > 2 else 0)
    if op in _MATMUL:
        a = ins[0]
        if a is None or out0 is None:
            return None
        if op == "MatMulNBits":
            k, n = int(_attr(node, "K")), int(_attr(node, "N"))
            macs = _prod(a[:-1]) * k * n
        else:
            k = a[-1]
            macs = out_elems * k
        return "gemm", macs, 2 * macs
    if op == "Einsum":
        macs = _einsum_macs(_attr(node, "equation", b"").decode()
                            if isinstance(_attr(node, "equation"), bytes)
                            else str(_attr(node, "equation", "")), ins)
        if macs is None:
            return None
        return "gemm", macs, 2 * macs
    if op in _ATTENTION:
        q = ins[0]
        if q is None or out0 is None:
            return None
        if op == "Attention" and node.domain == "com.microsoft":
            w = ins[1]
            if w is None or len(q) != 3:
                return None
            b, s, h = q
            proj = b * s * h * w[1]
            macs = proj + 2 * b * s * s * h
        else:
            k = ins[1] if len(ins) > 1 else None
            if k is None:
                return None
            if len(q) == 4:       # [B, heads, S, d] x [B, kv_heads, L, d]
                b, hq, s, d = q
                macs = 2 * b * hq * s * k[2] * d
            else:                 # [B, S, hidden] x [B, L, hidden]
                b, s, hid = q
                macs = 2 * b * s * k[1] * hid
        return "attention", macs, 2 * macs + 5 * out_elems
    if op in _RNN:
        x, w = ins[0], ins[1]
        if x is None or w is None:
            return None
        seq, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
        dirs, gates_h, inp = w
        hidden = gates_h // _RNN[op]
        macs = seq * batch * dirs * gates_h * (inp + hidden)
        return "gemm", macs, 2 * macs
    if out_elems is None:
        return None
    if op in _ELEMENTWISE:
        return "elementwise", 0, _ELEMENTWISE[op] * out_elems
    if op in _NORM:
        return "norm", 0, _NORM[op] * out_elems
    if op in _REDUCE:
        return "reduce", 0, _prod(ins[0]) if ins and ins[0] is not None else out_elems
    if op in _POOL:
        k = _attr(node, "kernel_shape", None)
        return "pool", 0, out_elems * (_prod(k) if k else 1)
    if op in _DATA:
        return "data", 0, (4 * out_elems if op in ("Resize", "Upsample", "GridSample") else 0)
    if op in _VIEW:
        return "view", 0, 0
    if op in _SHAPE:
        return "shape", 0, 0
    return None


def analyze(onnx_path: str | os.PathLike, *, batch: int = 1, seq_len: int | None = None,
            input_shapes=None) -> StaticAnalysis:
    """Cost every node of ``onnx_path`` at ``batch`` (and ``seq_len`` for text inputs).

    Raises ModelFileError for unreadable files and for inputs whose shapes cannot be inferred.
    """
    if batch < 1:
        raise ModelFileError(f"batch must be >= 1, got {batch}")
    path = Path(onnx_path)
    model = load_onnx(path)
    warnings: list[str] = []
    shapes_in = resolve_input_shapes(model, path, batch=batch, seq_len=seq_len,
                                     input_shapes=parse_input_shapes(input_shapes),
                                     warnings=warnings)
    model = _fix_and_infer(model, shapes_in, path)
    g = model.graph

    info: dict[str, tuple[list[int] | None, int]] = {}

    def _record(vi):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            return
        shp = None
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            shp = None if any(x < 0 for x in dims) else dims
        info[vi.name] = (shp, tt.elem_type)

    for vi in [*g.input, *g.value_info, *g.output]:
        _record(vi)
    consts: dict[str, tuple[list[int], int]] = {}
    for init in g.initializer:
        consts[init.name] = (list(init.dims), init.data_type)
    for node in g.node:
        if node.op_type == "Constant" and node.output:
            t = _attr(node, "value", None)
            if t is not None and hasattr(t, "dims"):
                consts[node.output[0]] = (list(t.dims), t.data_type)
    for name, v in consts.items():
        info[name] = v

    def shape_of(name):
        return info.get(name, (None, 0))[0]

    def nbytes(name) -> int:
        shp, et = info.get(name, (None, 0))
        return int(_prod(shp) * _itemsize(et)) if shp is not None else 0

    def is_weight(name) -> bool:
        from onnx import TensorProto
        return name in consts and consts[name][1] not in (TensorProto.INT64, TensorProto.INT32,
                                                           TensorProto.BOOL)

    def tiny_int(name) -> bool:
        from onnx import TensorProto
        shp, et = info.get(name, (None, 0))
        return et in (TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL) and \
            shp is not None and _prod(shp) <= 64

    layers: list[LayerCost] = []
    uncosted: Counter = Counter()
    missing_shape: Counter = Counter()
    seen_weights: set[str] = set()
    for idx, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{idx}"
        res = _cost(node, shape_of, lambda n: n in consts)
        outs = [o for o in node.output if o]
        if res is None and node.op_type not in _CONV | _GEMM | _MATMUL | _ATTENTION and outs and \
                all(tiny_int(o) for o in outs):
            res = ("shape", 0, 0)       # shape arithmetic glue on tiny int tensors
        if res is None:
            known_op = (node.op_type in _ELEMENTWISE or node.op_type in _NORM or
                        node.op_type in _REDUCE or node.op_type in _POOL or node.op_type in _DATA
                        or node.op_type in _CONV | _GEMM | _MATMUL | _ATTENTION | set(_RNN)
                        or node.op_type == "Einsum")
            if known_op:
                missing_shape[node.op_type] += 1
            uncosted[node.op_type] += 1
            cat, macs, flops = "uncosted", 0, 0
        else:
            cat, macs, flops = res
        w_names = [n for n in node.input if n and is_weight(n)]
        w_bytes = sum(nbytes(n) for n in w_names)
        new_w = [n for n in w_names if n not in seen_weights]
        seen_weights.update(new_w)
        params = sum(_prod(consts[n][0]) for n in new_w)
        if cat in ("view", "shape"):
            moved = 0
        else:
            moved = sum(nbytes(n) for n in node.input if n) + sum(nbytes(o) for o in outs)
        out_shape = shape_of(outs[0]) if outs else None
        layers.append(LayerCost(name, node.op_type, cat, int(macs), int(flops), int(moved),
                                int(w_bytes), int(params), out_shape,
                                [n for n in node.input if n], outs))
    for op, n in sorted(missing_shape.items()):
        warnings.append(f"{n} {op} node(s) had no inferred shape and were not costed")
    for op in sorted(set(uncosted) - set(missing_shape)):
        warnings.append(f"op type {op} ({uncosted[op]} node(s)) has no cost model; listed, not costed")

    weight_bytes = sum(nbytes(n) for n in consts if is_weight(n))
    params_total = sum(_prod(consts[n][0]) for n in consts if is_weight(n))
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, layer in enumerate(layers):
        for n in layer.inputs:
            consumers[n].append(i)
    graph_outs = [o.name for o in g.output]
    peak = _peak_activation(layers, consumers, set(consts), [i.name for i in graph_inputs(model)],
                            set(graph_outs), nbytes)
    return StaticAnalysis(
        path=str(path), batch=int(batch), seq_len=seq_len, input_shapes=shapes_in, layers=layers,
        uncosted_ops=dict(uncosted), peak_activation_bytes=peak, weight_bytes=int(weight_bytes),
        params=int(params_total), warnings=warnings, opset=_opset(model),
        consumers=dict(consumers), graph_outputs=graph_outs)


def _peak_activation(layers, consumers, consts, inputs, outputs, nbytes) -> int:
    """Max over the topological order of the bytes of live activations (views alias)."""
    last_use = {}
    for name, users in consumers.items():
        last_use[name] = max(users)
    end = len(layers)
    live: dict[str, int] = {n: nbytes(n) for n in inputs}
    for n in outputs:
        last_use[n] = end
    current = sum(live.values())
    peak = current
    for i, layer in enumerate(layers):
        for o in layer.outputs:
            size = 0 if layer.category in ("view", "shape") else nbytes(o)
            live[o] = size
            current += size
        peak = max(peak, current)
        for n in set(layer.inputs) | set(layer.outputs):
            if n in live and n not in consts and last_use.get(n, i) <= i:
                current -= live.pop(n)
    return int(peak)
