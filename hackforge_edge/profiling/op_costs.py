"""Cost rules per ONNX op: category, MACs and FLOPs of one node given its tensor shapes.

Conventions: 1 MAC = 2 FLOPs. Elementwise and normalisation ops are costed per output
element (transcendentals a few FLOPs each); data-movement, view and shape ops cost no
arithmetic. An op without a rule here returns None and is listed as uncosted by the caller.
"""

from __future__ import annotations

import math
from typing import Callable

Shape = list[int] | None

# FLOPs per output element for elementwise ops (transcendentals cost a few)
ELEMENTWISE = {
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
NORM = {"BatchNormalization": 2, "LayerNormalization": 8, "InstanceNormalization": 8,
        "GroupNormalization": 8, "LRN": 5, "Softmax": 5, "LogSoftmax": 6, "Hardmax": 2,
        "SkipLayerNormalization": 9, "SimplifiedLayerNormalization": 6,
        "SkipSimplifiedLayerNormalization": 7, "RMSNormalization": 6, "MeanVarianceNormalization": 8,
        "LpNormalization": 3, "BiasSoftmax": 6}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
          "CumSum", "TopK", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
POOL = {"MaxPool", "AveragePool", "LpPool", "MaxRoiPool", "RoiAlign", "MaxUnpool"}
DATA = {"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Pad",
        "Expand", "Tile", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "ScatterND",
        "ScatterElements", "Scatter", "Trilu", "NonZero", "OneHot", "Compress",
        "ReverseSequence", "EyeLike", "Col2Im", "GridSample", "SplitToSequence",
        "ConcatFromSequence", "Unique", "NonMaxSuppression", "Det", "CenterCropPad",
        "EmbedLayerNormalization", "Bernoulli", "RandomNormalLike", "RandomUniformLike"}
VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Optional",
        "OptionalGetElement"}
SHAPE = {"Shape", "Size", "Constant", "ConstantOfShape", "Range"}
CONV = {"Conv", "FusedConv", "ConvInteger", "QLinearConv", "NhwcConv", "ConvTranspose"}
MATMUL = {"MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "MatMulNBits",
          "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
GEMM = {"Gemm", "FusedGemm", "QGemm"}
ATTENTION = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}
RNN = {"LSTM": 4, "GRU": 3, "RNN": 1}
# ops whose cost needs shapes beyond the output's: arithmetic-heavy, never "shape glue"
HEAVY = CONV | GEMM | MATMUL | ATTENTION | set(RNN) | {"Einsum"}
KNOWN = HEAVY | set(ELEMENTWISE) | set(NORM) | REDUCE | POOL | DATA
# Categories whose time is dominated by arithmetic (the rest is memory traffic)
COMPUTE_CATEGORIES = ("conv", "dwconv", "gemm", "attention")

Cost = tuple[str, int, int]          # (category, macs, flops)


def prod(xs) -> int:
    return int(math.prod(xs)) if xs is not None else 0


def attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def itemsize(elem_type: int) -> float:
    """Bytes per element of an ONNX tensor type (0 for strings / undefined)."""
    from onnx import TensorProto, helper
    if elem_type in ((TensorProto.INT4, TensorProto.UINT4) if hasattr(TensorProto, "INT4") else ()):
        return 0.5
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, ValueError, TypeError):  # strings / undefined
        return 0


def _einsum_macs(eq: str, shapes: list[Shape]) -> int | None:
    eq = eq.replace(" ", "")
    terms = eq.split("->")[0].split(",")
    if "..." in eq or len(terms) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for term, shp in zip(terms, shapes, strict=True):
        if shp is None or len(term) != len(shp):
            return None
        for ch, n in zip(term, shp, strict=True):
            sizes[ch] = max(sizes.get(ch, 1), n)
    return prod(sizes.values())


def _conv(node, ins: list[Shape], out0: Shape) -> Cost | None:
    op = node.op_type
    w_idx = 3 if op == "QLinearConv" else 1
    w = ins[w_idx] if len(ins) > w_idx else None
    x = ins[0]
    if w is None or out0 is None or x is None:
        return None
    group = int(attr(node, "group", 1) or 1)
    out_elems = prod(out0)
    macs = prod(x) * prod(w[1:]) if op == "ConvTranspose" else out_elems * prod(w[1:])
    cin_per_group = w[0] if op == "ConvTranspose" else w[1]
    cat = "dwconv" if group > 1 and cin_per_group <= 4 else "conv"
    bias = out_elems if len(node.input) > 2 and node.input[2] else 0
    return cat, macs, 2 * macs + bias


def _gemm(node, ins: list[Shape], out0: Shape) -> Cost | None:
    a, b = ins[0], ins[1]
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m, k = (a[1], a[0]) if attr(node, "transA", 0) else (a[0], a[1])
    n = b[0] if attr(node, "transB", 0) else b[1]
    macs = m * k * n
    return "gemm", macs, 2 * macs + (m * n if len(ins) > 2 else 0)


def _matmul(node, ins: list[Shape], out0: Shape) -> Cost | None:
    a = ins[0]
    if a is None or out0 is None:
        return None
    if node.op_type == "MatMulNBits":
        macs = prod(a[:-1]) * int(attr(node, "K")) * int(attr(node, "N"))
    else:
        macs = prod(out0) * a[-1]
    return "gemm", macs, 2 * macs


def _einsum(node, ins: list[Shape], out0: Shape) -> Cost | None:
    eq = attr(node, "equation", "")
    macs = _einsum_macs(eq.decode() if isinstance(eq, bytes) else str(eq), ins)
    return None if macs is None else ("gemm", macs, 2 * macs)


def _attention(node, ins: list[Shape], out0: Shape) -> Cost | None:
    q = ins[0]
    if q is None or out0 is None:
        return None
    if node.op_type == "Attention" and node.domain == "com.microsoft":
        w = ins[1]
        if w is None or len(q) != 3:
            return None
        b, s, h = q
        macs = b * s * h * w[1] + 2 * b * s * s * h      # QKV projection + scores and context
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
    return "attention", macs, 2 * macs + 5 * prod(out0)


def _rnn(node, ins: list[Shape], out0: Shape) -> Cost | None:
    x, w = ins[0], ins[1]
    if x is None or w is None:
        return None
    seq, batch = (x[1], x[0]) if attr(node, "layout", 0) else (x[0], x[1])
    dirs, gates_h, inp = w
    hidden = gates_h // RNN[node.op_type]
    macs = seq * batch * dirs * gates_h * (inp + hidden)
    return "gemm", macs, 2 * macs


_HEAVY_RULES: list[tuple[set[str], Callable[..., Cost | None]]] = [
    (CONV, _conv), (GEMM, _gemm), (MATMUL, _matmul), ({"Einsum"}, _einsum),
    (ATTENTION, _attention), (set(RNN), _rnn)]


def _light(op: str, ins: list[Shape], out_elems: int) -> Cost | None:
    if op in ELEMENTWISE:
        return "elementwise", 0, ELEMENTWISE[op] * out_elems
    if op in NORM:
        return "norm", 0, NORM[op] * out_elems
    if op in REDUCE:
        return "reduce", 0, prod(ins[0]) if ins and ins[0] is not None else out_elems
    if op in DATA:
        return "data", 0, (4 * out_elems if op in ("Resize", "Upsample", "GridSample") else 0)
    if op in VIEW:
        return "view", 0, 0
    if op in SHAPE:
        return "shape", 0, 0
    return None


def cost_of(node, shape_of: Callable[[str], Shape]) -> Cost | None:
    """(category, macs, flops) of ``node``, or None when its op or shapes cannot be costed."""
    ins = [shape_of(n) if n else None for n in node.input]
    outs = [shape_of(n) for n in node.output]
    out0 = outs[0] if outs else None
    for ops, rule in _HEAVY_RULES:
        if node.op_type in ops:
            return rule(node, ins, out0)
    if out0 is None:
        return None
    if node.op_type in POOL:
        k = attr(node, "kernel_shape", None)
        return "pool", 0, prod(out0) * (prod(k) if k else 1)
    return _light(node.op_type, ins, prod(out0))
