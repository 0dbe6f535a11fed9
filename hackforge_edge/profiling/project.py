"""Roofline projection of a statically analysed model onto a hardware profile.

    T = sum_l max(F_l / (eta_c[class_l] * peak), Q_l / (eta_m * BW)) + N_kernels * t_launch + T_host

per layer after the engine's fusions (Conv/Gemm epilogues: BN, activation, residual add;
TensorRT also merges pointwise chains). ``class_l`` is dense (conv, GEMM, attention) or
depthwise; other layers are costed by memory traffic. The latency meant is end to end for
one ``session.run`` / engine execution with inputs already on the device: kernel time +
launch overhead + host overhead, **without** host<->device copies of inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hackforge_edge.errors import ProfileError, UsageError

LATENCY_DEFINITION = ("end to end per inference call at this batch: kernel time (per-layer "
                      "roofline) + kernel launch overhead + host overhead; excludes host<->device "
                      "copies of inputs/outputs and pre/post-processing")
METHOD = "per-layer roofline + kernel launch + host overhead"
# Assumed spread of the power model (idle + util x (max - idle)) around the truth.
POWER_BAND = (0.6, 1.4)
_BYTES_SCALE = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}
BYTES_SCALE = _BYTES_SCALE
# ops an engine folds into the preceding Conv/Gemm/MatMul kernel (epilogue fusion)
_EPILOGUE = {"Relu", "Clip", "BatchNormalization", "Add", "Sigmoid", "HardSigmoid", "HardSwish",
             "LeakyRelu", "Tanh", "Gelu", "FastGelu", "BiasGelu", "Mul", "Div"}
_MAX_EPILOGUE = 3
PARAM_NAMES = ("eta_c", "eta_c_depthwise", "eta_m", "t_launch_us", "t_host_ms", "cache_speedup")


@dataclass
class Features:
    """What the latency model needs from a StaticAnalysis (after fusion for one engine)."""

    flops: list[float]
    bytes: list[float]
    depthwise: list[bool]
    compute: list[bool]
    n_kernels: int
    n_fused: int
    resident: list[bool] | None = None    # working set fits in the last-level cache


def layer_features(static, engine: str, precision: str = "fp32",
                   cache_bytes: float | None = None) -> Features:
    """Fuse per the engine's rules and return per-kernel FLOPs / bytes / class.

    A kernel is cache-resident when its traffic (inputs + weights + outputs) fits in
    ``cache_bytes``; its memory time is then divided by the engine's ``cache_speedup``.
    """
    scale = _BYTES_SCALE[precision]
    layers = static.layers
    consumers = static.consumers
    outputs = set(static.graph_outputs)
    producer: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for o in layer.outputs:
            producer[o] = i
    fused_into: dict[int, int] = {}      # layer index -> head layer index
    chain_len: dict[int, int] = {}
    pointwise = engine == "tensorrt"

    def single_consumer(i: int) -> bool:
        outs = layers[i].outputs
        return len(outs) == 1 and len(consumers.get(outs[0], [])) == 1 and outs[0] not in outputs

    bytes_scale: dict[int, float] = {}
    for i, layer in enumerate(layers):
        if layer.category not in ("elementwise", "norm") or not layer.inputs:
            continue
        # x * sigmoid(x) (SiLU/Swish): one kernel in ORT (QuickGelu) and TensorRT
        if layer.op_type == "Mul" and len(layer.inputs) == 2:
            sig = next((producer[n] for n in layer.inputs if n in producer and
                        layers[producer[n]].op_type in ("Sigmoid", "HardSigmoid") and
                        layers[producer[n]].inputs[:1] == [m for m in layer.inputs if m != n][:1]),
                       None)
            if sig is not None and single_consumer(sig):
                fused_into[sig] = i
                bytes_scale[i] = 2 / 3            # reads x once instead of x and sigmoid(x)
                continue
        # the activation input: the first non-constant input produced by another layer
        src = next((producer[n] for n in layer.inputs if n in producer), None)
        if src is None or not single_consumer(src):
            continue
        head = fused_into.get(src, src)
        head_cat = layers[head].category
        # ORT CPU fuses bias/activation into Conv and Gemm, not into MatMul; there the bias
        # Add goes into the next op instead (BiasGelu, SkipLayerNormalization)
        matmul_head = engine != "tensorrt" and layers[head].op_type in ("MatMul", "Einsum")
        if matmul_head:
            continue
        if layers[src].op_type == "Add" and layer.op_type in ("Gelu", "LayerNormalization",
                                                              "FastGelu") and src not in fused_into:
            fused_into[i] = src
            continue
        if head_cat in ("conv", "dwconv", "gemm") and layer.op_type in _EPILOGUE:
            if chain_len.get(head, 0) < _MAX_EPILOGUE:
                fused_into[i] = head
                chain_len[head] = chain_len.get(head, 0) + 1
        elif pointwise and head_cat in ("elementwise", "norm"):
            fused_into[i] = head

    free = ("view",) if engine != "tensorrt" else ("view", "shape")
    flops, byts, dw, comp = [], [], [], []
    for i, layer in enumerate(layers):
        if i in fused_into or layer.category in free:
            continue
        if layer.category == "shape":
            flops.append(0.0)
            byts.append(0.0)
        else:
            flops.append(float(layer.flops))
            byts.append(float(layer.bytes_moved) * scale * bytes_scale.get(i, 1.0))
        dw.append(layer.category == "dwconv")
        comp.append(layer.category in ("conv", "dwconv", "gemm", "attention"))
    resident = [bool(cache_bytes) and q <= cache_bytes for q in byts]
    return Features(flops, byts, dw, comp, n_kernels=len(flops), n_fused=len(fused_into),
                    resident=resident)


def predict_seconds(feat: Features, params: dict[str, float], peak_flops: float,
                    bandwidth_bps: float) -> dict[str, float]:
    """Latency in seconds and its parts for given efficiencies and roofs."""
    eta_c, eta_dw, eta_m = params["eta_c"], params["eta_c_depthwise"], params["eta_m"]
    speedup = params.get("cache_speedup", 1.0)
    resident = feat.resident or [False] * len(feat.flops)
    c_sum = m_sum = busy = 0.0
    for f, q, dw, comp, res in zip(feat.flops, feat.bytes, feat.depthwise, feat.compute, resident):
        tc = f / ((eta_dw if dw else eta_c) * peak_flops) if comp else 0.0
        tm = q / (eta_m * bandwidth_bps * (speedup if res else 1.0))
        if tc >= tm:
            c_sum += tc
        else:
            m_sum += tm
        busy += max(tc, tm)
    launch = feat.n_kernels * params["t_launch_us"] * 1e-6
    host = params["t_host_ms"] * 1e-3
    return {"total": busy + launch + host, "compute_bound": c_sum, "memory_bound": m_sum,
            "launch": launch, "host": host}


@dataclass
class Projection:
    profile: str
    display_name: str
    mode: str
    engine: str
    precision: str
    batch: int
    latency_s: float
    low_s: float
    high_s: float
    breakdown_s: dict[str, float]
    n_kernels: int
    memory: dict[str, int]
    memory_capacity_bytes: int
    memory_available_bytes: int
    power_w: float
    power_method: str
    energy_j: float
    energy_low_j: float
    energy_high_j: float
    calibration: dict[str, Any]
    efficiencies: dict[str, Any]
    roofs: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1000.0

    @property
    def memory_required_bytes(self) -> int:
        return int(sum(self.memory.values()))

    @property
    def bound(self) -> str:
        b = self.breakdown_s
        parts = {"compute": b["compute_bound"], "memory": b["memory_bound"],
                 "overhead": b["launch"] + b["host"]}
        return max(parts, key=parts.get)

    def to_json(self) -> dict:
        return {
            "profile": self.profile, "display_name": self.display_name, "mode": self.mode,
            "engine": self.engine, "precision": self.precision, "batch": self.batch,
            "kind": "projected", "method": METHOD, "latency_definition": LATENCY_DEFINITION,
            "latency_ms": {"value": self.latency_ms, "low": self.low_s * 1e3,
                           "high": self.high_s * 1e3},
            "throughput_per_s": self.batch / self.latency_s,
            "memory_required_bytes": self.memory_required_bytes,
            "memory_capacity_bytes": self.memory_capacity_bytes,
            "memory_available_bytes": self.memory_available_bytes,
            "memory_breakdown": dict(self.memory),
            "power_w": {"value": self.power_w, "kind": "estimated", "method": self.power_method},
            "energy_per_inference_j": {
                "value": self.energy_j, "low": self.energy_low_j, "high": self.energy_high_j,
                "kind": "estimated",
                "method": "projected latency x estimated power / batch (per sample); band = "
                          f"latency band x power band {list(POWER_BAND)}"},
            "calibration": self.calibration, "efficiencies": self.efficiencies,
            "roofs": self.roofs,
            "breakdown_ms": {k: v * 1e3 for k, v in self.breakdown_s.items() if k != "total"},
            "n_kernels": self.n_kernels, "bound": self.bound, "warnings": list(self.warnings),
        }


def _calibrated_note(eff) -> str:
    on = eff.calibrated_on
    if on is None:
        return "efficiencies calibrated as shipped in the profile"
    return (f"efficiencies fitted to {on.n_points} published latencies ({', '.join(on.models)}; "
            f"{', '.join(on.precisions)}; {on.date}); leave-one-model-out |error| median "
            f"{on.loo_median_abs_error_pct:g} %, worst {on.loo_worst_abs_error_pct:g} %")


def resolve_efficiencies(profile, calibration) -> tuple[dict[str, float], dict[str, Any],
                                                         dict[str, float] | None]:
    """(params, calibration block, roofs override) for ``profile`` under ``calibration``."""
    eff = profile.efficiency
    if calibration is None:
        params = {k: getattr(eff, k) for k in PARAM_NAMES}
        block = {"calibrated": bool(eff.calibrated), "source": eff.source,
                 "band_low": eff.band[0], "band_high": eff.band[1], "n_points": 0,
                 "rms_log_residual": None,
                 "note": ("uncalibrated: engine efficiencies are priors, the band is wide "
                          f"(x{eff.band[0]:g} .. x{eff.band[1]:g})") if not eff.calibrated
                 else _calibrated_note(eff)}
        return params, block, None
    return calibration.params_for(profile)


def compute_peak(profile, precision: str, mode: str | None = None) -> float | None:
    """Compute roof in FLOP/s (OP/s) for ``precision``: the profile's peak, fp32 scaled by the
    engine's fitted ``fp32_compute_scale`` (published TensorRT FP32 rows on Ampere Jetsons
    beat the FP32 CUDA-core peak: likely TF32 tensor cores)."""
    peak = profile.peak_flops(precision, mode)
    if peak is not None and precision == "fp32":
        peak *= profile.efficiency.fp32_compute_scale
    return peak


def cache_bytes_of(profile) -> float | None:
    return profile.cache_mb * 1024 * 1024 if profile.cache_mb else None


def project(static, profile, *, mode: str | None = None, precision: str = "fp32",
            batch: int | None = None, calibration=None) -> Projection:
    """Project ``static`` (analysed at ``batch``) onto ``profile`` in ``mode`` at ``precision``.

    Latency in seconds internally, ms in JSON; energy per inference is per sample.
    Raises ProfileError when the profile has no peak for ``precision``.
    """
    from hackforge_edge.profiling.hardware import load_profile

    profile = load_profile(profile)
    batch = static.batch if batch is None else int(batch)
    if batch != static.batch:
        raise UsageError(f"projection at batch {batch} needs a static analysis at that batch "
                         f"(got one at batch {static.batch})")
    if precision not in _BYTES_SCALE:
        raise UsageError(f"unknown precision {precision!r} (known: {', '.join(_BYTES_SCALE)})")
    pm = profile.mode(mode)
    peak = compute_peak(profile, precision, pm.name)
    if peak is None:
        raise ProfileError(f"profile {profile.name} has no {precision} peak (not supported "
                           "by that target)")
    bw = profile.bandwidth_bps(pm.name)
    params, cal_block, roofs = resolve_efficiencies(profile, calibration)
    if roofs is not None:        # a fit on this very profile: reuse the roofs it was fitted with
        ratio = peak / compute_peak(profile, "fp32", pm.name)   # precision vs the fp32 roof
        peak = roofs["peak_fp32_flops"] * pm.compute_scale * ratio
        bw = roofs["bandwidth_bps"] * pm.bandwidth_scale
    feat = layer_features(static, profile.engine, precision, cache_bytes_of(profile))
    parts = predict_seconds(feat, params, peak, bw)
    lat = parts["total"]
    lo, hi = cal_block["band_low"], cal_block["band_high"]

    warnings = []
    if static.uncosted_ops:
        warnings.append("uncosted op types (not in the latency): " +
                        ", ".join(f"{k} x{v}" for k, v in sorted(static.uncosted_ops.items())))
    if precision != "fp32":
        warnings.append(f"assumes the engine runs the model in {precision} (weights and "
                        f"activations scaled by {_BYTES_SCALE[precision]} of fp32 bytes)")

    scale = _BYTES_SCALE[precision]
    memory = {"weights_bytes": int(static.weight_bytes * scale),
              "peak_activation_bytes": int(static.peak_activation_bytes * scale),
              "runtime_overhead_bytes": int(profile.efficiency.runtime_overhead_mb * 1e6)}

    busy = parts["compute_bound"] + parts["memory_bound"]
    util = busy / lat if lat > 0 else 1.0
    if profile.device_type == "cpu":
        util = 1.0                      # ORT keeps every intra-op thread spinning
    power = pm.idle_w + util * (pm.max_w - pm.idle_w)
    energy = lat * power / batch
    method = (f"idle {pm.idle_w:g} W + util {util:.2f} x (max {pm.max_w:g} W - idle); util = "
              + ("1 (all CPU threads busy during inference)" if profile.device_type == "cpu"
                 else "share of the projected latency spent in kernels"))
    return Projection(
        profile=profile.name, display_name=profile.display_name, mode=pm.name,
        engine=profile.engine, precision=precision, batch=batch, latency_s=lat,
        low_s=lat * lo, high_s=lat * hi, breakdown_s=parts, n_kernels=feat.n_kernels,
        memory=memory, memory_capacity_bytes=profile.memory_bytes,
        memory_available_bytes=profile.memory_available_bytes, power_w=power,
        power_method=method, energy_j=energy, energy_low_j=energy * lo * POWER_BAND[0],
        energy_high_j=energy * hi * POWER_BAND[1], calibration=cal_block,
        efficiencies={**{k: params[k] for k in PARAM_NAMES},
                      "fp32_compute_scale": profile.efficiency.fp32_compute_scale,
                      "source": cal_block["source"]},
        roofs={"compute_tflops": peak / 1e12, "bandwidth_gbs": bw / 1e9},
        warnings=warnings)
