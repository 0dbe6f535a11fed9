"""Static analysis of an ONNX graph: MACs, FLOPs, bytes moved, parameters, peak activations.

Conventions: 1 MAC = 2 FLOPs. ``bytes_moved`` of a node = bytes of its inputs (weights
included) + bytes of its outputs, i.e. the DRAM traffic if nothing stayed in cache. View ops
(Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) alias their input and move nothing;
shape arithmetic on tiny int64 tensors is counted as ``shape`` with no cost. Ops that cannot
be costed are listed in ``uncosted_ops`` with counts, never silently counted as zero.
Shapes come from :mod:`.shapes`, the cost of each op from :mod:`.op_costs`.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hackforge_edge.errors import ModelFileError
from hackforge_edge.profiling.op_costs import (
    COMPUTE_CATEGORIES,
    HEAVY,
    KNOWN,
    attr,
    cost_of,
    itemsize,
    prod,
)
from hackforge_edge.profiling.shapes import (
    TEXT_INPUTS,
    graph_inputs,
    infer_concrete_shapes,
    load_onnx,
    opset_of,
    parse_input_shapes,
    resolve_input_shapes,
)

__all__ = ["COMPUTE_CATEGORIES", "TEXT_INPUTS", "LayerCost", "StaticAnalysis", "analyze",
           "graph_inputs", "load_onnx", "opset_of", "parse_input_shapes", "resolve_input_shapes"]


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
    shape_inference: str = "onnx shape inference"

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
        d = {"kind": "static", "method": f"{self.shape_inference} (1 MAC = 2 FLOPs)",
             "path": self.path, "batch": self.batch, "seq_len": self.seq_len,
             "input_shapes": self.input_shapes, "opset": self.opset, "totals": self.totals(),
             "by_op_type": self.by_op_type(), "uncosted_ops": dict(self.uncosted_ops),
             "warnings": list(self.warnings),
             "top_layers": [x.to_json() for x in
                            sorted(self.layers, key=lambda x: -x.flops)[:top]]}
        if layers:
            d["layers"] = [x.to_json() for x in self.layers]
        return d


class _Tensors:
    """Shape, element type and constness of every named tensor of an inferred graph."""

    _INT_TYPES = (6, 7, 9)          # TensorProto INT32, INT64, BOOL

    def __init__(self, graph):
        self.info: dict[str, tuple[list[int] | None, int]] = {}
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            if not vi.type.HasField("tensor_type"):
                continue
            tt, shp = vi.type.tensor_type, None
            if tt.HasField("shape"):
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
                shp = None if any(x < 0 for x in dims) else dims
            self.info[vi.name] = (shp, tt.elem_type)
        self.consts: dict[str, tuple[list[int], int]] = {
            init.name: (list(init.dims), init.data_type) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                t = attr(node, "value", None)
                if t is not None and hasattr(t, "dims"):
                    self.consts[node.output[0]] = (list(t.dims), t.data_type)
        self.info.update(self.consts)

    def shape_of(self, name: str) -> list[int] | None:
        return self.info.get(name, (None, 0))[0]

    def nbytes(self, name: str) -> int:
        shp, et = self.info.get(name, (None, 0))
        return int(prod(shp) * itemsize(et)) if shp is not None else 0

    def is_weight(self, name: str) -> bool:
        return name in self.consts and self.consts[name][1] not in self._INT_TYPES

    def tiny_int(self, name: str) -> bool:
        shp, et = self.info.get(name, (None, 0))
        return et in self._INT_TYPES and shp is not None and prod(shp) <= 64


def _cost_layers(graph, t: _Tensors) -> tuple[list[LayerCost], Counter, Counter]:
    """One LayerCost per node; plus uncosted op counts and those that lacked a shape."""
    layers: list[LayerCost] = []
    uncosted: Counter = Counter()
    missing_shape: Counter = Counter()
    seen_weights: set[str] = set()
    for idx, node in enumerate(graph.node):
        res = cost_of(node, t.shape_of)
        outs = [o for o in node.output if o]
        if res is None and node.op_type not in HEAVY and outs and all(t.tiny_int(o) for o in outs):
            res = ("shape", 0, 0)       # shape arithmetic glue on tiny int tensors
        if res is None:
            if node.op_type in KNOWN:
                missing_shape[node.op_type] += 1
            uncosted[node.op_type] += 1
            res = ("uncosted", 0, 0)
        cat, macs, flops = res
        ins = [n for n in node.input if n]
        w_names = [n for n in ins if t.is_weight(n)]
        new_w = [n for n in w_names if n not in seen_weights]
        seen_weights.update(new_w)
        moved = 0 if cat in ("view", "shape") else sum(t.nbytes(n) for n in ins + outs)
        layers.append(LayerCost(
            node.name or f"{node.op_type}_{idx}", node.op_type, cat, int(macs), int(flops),
            int(moved), int(sum(t.nbytes(n) for n in w_names)),
            int(sum(prod(t.consts[n][0]) for n in new_w)),
            t.shape_of(outs[0]) if outs else None, ins, outs))
    return layers, uncosted, missing_shape


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
    model, method = infer_concrete_shapes(model, shapes_in, path)
    g = model.graph
    t = _Tensors(g)
    layers, uncosted, missing_shape = _cost_layers(g, t)
    for op, n in sorted(missing_shape.items()):
        warnings.append(f"{n} {op} node(s) had no inferred shape and were not costed")
    for op in sorted(set(uncosted) - set(missing_shape)):
        warnings.append(f"op type {op} ({uncosted[op]} node(s)) has no cost model; listed, not costed")

    weights = [n for n in t.consts if t.is_weight(n)]
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, layer in enumerate(layers):
        for n in layer.inputs:
            consumers[n].append(i)
    graph_outs = [o.name for o in g.output]
    peak = _peak_activation(layers, consumers, set(t.consts), [i.name for i in graph_inputs(model)],
                            set(graph_outs), t.nbytes)
    return StaticAnalysis(
        path=str(path), batch=int(batch), seq_len=seq_len, input_shapes=shapes_in, layers=layers,
        uncosted_ops=dict(uncosted), peak_activation_bytes=peak,
        weight_bytes=int(sum(t.nbytes(n) for n in weights)),
        params=int(sum(prod(t.consts[n][0]) for n in weights)), warnings=warnings,
        opset=opset_of(model), consumers=dict(consumers), graph_outputs=graph_outs,
        shape_inference=method)


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
