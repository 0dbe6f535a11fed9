"""Profiling: hardware profiles, static ONNX analysis, local measurement, roofline projection.

Public API (stable; everything is imported lazily so ``hf-edge --help`` stays fast)::

    load_profile(name_or_path: str | Path, *, tdp_w: float | None = None) -> HardwareProfile
        Shipped name (``list_profiles()``), ``"local"`` (detected at run time) or a path to
        a user YAML. Unknown name / invalid file -> ProfileError (file + field).
    list_profiles() -> list[str]                      # shipped names + "local", sorted
    analyze(onnx_path, *, batch=1, seq_len=None, input_shapes=None) -> StaticAnalysis
        input_shapes: {"input_name": [1, 3, 224, 224]} (or "name=1x3x224x224" strings)
    measure(onnx_path, *, batch_sizes=(1, 4, 8), warmup=3, runs=20, providers=None,
            seq_len=None, input_shapes=None, meter=None, threads=None) -> LocalMeasurement
    project(static, profile, *, mode=None, precision="fp32", batch=1,
            calibration=None) -> Projection
        ``static`` must be analysed at the same batch (``batch`` is checked against it).
    load_calibration(profile: HardwareProfile) -> Calibration | None
        The stored fit for that profile (user cache dir), or for ort-cpu profiles other
        than ``local`` the local ort-cpu fit as a prior with a widened band.
    profile_model(onnx_path, profiles: list[str], *, batch_sizes=(1, 4, 8), seq_len=None,
                  input_shapes=None, meter=None, precisions=("fp32",), all_modes=False,
                  measure_local=True, runs=None, warmup=None) -> dict   # profile.json content

Every result has ``to_json() -> dict`` (plain JSON types, no NaN).

profile.json (what ``profile_model`` returns; the report reads it)::

    {
      "schema_version": 1,
      "generated_at": "2025-...Z",
      "model": {"path": str, "bytes": int, "opset": int, "producer": str,
                "inputs":  [{"name": str, "shape": [int|str], "dtype": str}],
                "outputs": [{"name": str, "shape": [int|str], "dtype": str}]},
      "static": {                         # StaticAnalysis.to_json(), one per batch size
        "<batch>": {
          "kind": "static", "method": "onnx-shape-inference",
          "batch": int, "seq_len": int|null, "input_shapes": {name: [int]},
          "totals": {"macs": int, "flops": int, "params": int, "weight_bytes": int,
                     "bytes_moved": int, "peak_activation_bytes": int, "nodes": int},
          "by_op_type": {op: {"count": int, "macs": int, "flops": int, "bytes_moved": int}},
          "uncosted_ops": {op: count},    # listed, never silently zero
          "warnings": [str],
          "top_layers": [{"name", "op_type", "category", "macs", "flops", "bytes_moved",
                          "weight_bytes", "params", "output_shape"}]   # 10 heaviest by FLOPs
        }},
      "local": {                          # LocalMeasurement.to_json(), or null
        "kind": "measured", "method": "onnxruntime-wallclock (perf_counter), warm-up excluded",
        "engine": "ort-cpu", "providers": [str], "onnxruntime_version": str,
        "threads": int|null, "warmup": int, "runs": int,
        "device": {"cpu_model": str, "logical_cores": int, ...},
        "session_create_s": {"value": float, "kind": "measured", "method": str},
        "memory": {"rss_before_bytes": int, "rss_after_load_bytes": int,
                   "rss_peak_bytes": int, "rss_delta_bytes": int,
                   "kind": "measured", "method": str},
        "batches": [{"batch": int, "status": "ok"|"skipped"|"error", "reason": str|null,
                     "kind": "measured", "method": str,
                     "latency_ms": {"p50", "p95", "p99", "mean", "min", "std"},
                     "throughput_per_s": float,        # batch / mean latency, samples/s
                     "energy_per_inference_j": {"value": float|null, "low": float|null,
                         "high": float|null, "kind": "measured"|"estimated",
                         "method": str, "avg_power_w": float|null}}]
      },
      "projections": [{                   # Projection.to_json()
        "profile": str, "display_name": str, "mode": str, "engine": str,
        "precision": "fp32"|"fp16"|"int8", "batch": int, "kind": "projected",
        "method": "per-layer roofline + kernel launch + host overhead",
        "latency_definition": str,        # end to end incl. host overhead, no host-device copies
        "latency_ms": {"value": float, "low": float, "high": float},
        "throughput_per_s": float,        # samples/s = batch / latency
        "memory_required_bytes": int, "memory_capacity_bytes": int,
        "memory_breakdown": {"weights_bytes", "peak_activation_bytes", "runtime_overhead_bytes"},
        "power_w": {"value": float, "kind": "estimated", "method": str},
        "energy_per_inference_j": {"value": float, "low": float, "high": float,
                                   "kind": "estimated", "method": str},
        "calibration": {"calibrated": bool, "source": str, "band_low": float,
                        "band_high": float, "n_points": int, "rms_log_residual": float|null,
                        "note": str},
        "efficiencies": {"eta_c": float, "eta_c_depthwise": float, "eta_m": float,
                         "t_launch_us": float, "t_host_ms": float, "source": str},
        "roofs": {"compute_tflops": float, "bandwidth_gbs": float},
        "breakdown_ms": {"compute_bound": float, "memory_bound": float,
                         "launch": float, "host": float},
        "n_kernels": int, "bound": "compute"|"memory"|"overhead",
        "warnings": [str]
      }],
      "skipped": [{"profile": str, "mode": str|null, "precision": str, "batch": int,
                   "reason": str}],      # e.g. precision not supported by the target
      "profiles": {name: HardwareProfile.to_json()}   # resolved YAML incl. sources/detected
    }
    Each projection also has "default_mode": bool. Projections use the stored calibration
    (``hf-edge calibrate``) when one exists; otherwise "calibration.calibrated" is false and the
    band is the profile's wide prior band.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hackforge_edge.profiling.calibrate import Calibration
    from hackforge_edge.profiling.hardware import HardwareProfile
    from hackforge_edge.profiling.measure import LocalMeasurement
    from hackforge_edge.profiling.project import Projection
    from hackforge_edge.profiling.static import StaticAnalysis

__all__ = [
    "load_profile", "list_profiles", "analyze", "measure", "project", "load_calibration",
    "profile_model",
]


def load_profile(name_or_path, *, tdp_w: float | None = None) -> "HardwareProfile":
    from hackforge_edge.profiling.hardware import load_profile as _f
    return _f(name_or_path, tdp_w=tdp_w)


def list_profiles() -> list[str]:
    from hackforge_edge.profiling.hardware import list_profiles as _f
    return _f()


def analyze(onnx_path, *, batch: int = 1, seq_len: int | None = None,
            input_shapes=None) -> "StaticAnalysis":
    from hackforge_edge.profiling.static import analyze as _f
    return _f(onnx_path, batch=batch, seq_len=seq_len, input_shapes=input_shapes)


def measure(onnx_path, **kwargs: Any) -> "LocalMeasurement":
    from hackforge_edge.profiling.measure import measure as _f
    return _f(onnx_path, **kwargs)


def project(static, profile, **kwargs: Any) -> "Projection":
    from hackforge_edge.profiling.project import project as _f
    return _f(static, profile, **kwargs)


def load_calibration(profile) -> "Calibration | None":
    from hackforge_edge.profiling.calibrate import load_calibration as _f
    return _f(profile)


def profile_model(onnx_path, profiles: list[str], **kwargs: Any) -> dict:
    from hackforge_edge.profiling.profiler import profile_model as _f
    return _f(onnx_path, profiles, **kwargs)
