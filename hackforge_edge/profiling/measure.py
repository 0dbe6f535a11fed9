"""Local measurement with onnxruntime: session creation, latency percentiles, memory, energy.

Latency is wall-clock (``time.perf_counter``) around ``InferenceSession.run`` with inputs
already in host memory, warm-up runs excluded. Energy per inference comes from the meter
passed in (the energy package's ``begin(name)`` / ``end(name) -> Measurement``) around the
timed loop, divided by the inferences in it; without a meter it is an estimate from the
``local`` profile's TDP (labelled ``estimated``, with its band).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from hackforge_edge.errors import ModelFileError, UsageError

LATENCY_METHOD = ("onnxruntime-wallclock (perf_counter around session.run), warm-up excluded; "
                  "percentiles interpolated linearly")
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
           "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


# shortest energy window (s): a CPU-time estimate ticks every ~10 ms, counters update every
# ~1-100 ms; half a second keeps the quantisation error of one window near 2 % or less
MIN_ENERGY_WINDOW_S = 0.5

@dataclass
class BatchResult:
    batch: int
    status: str                       # ok | skipped | error
    reason: str | None = None
    runs: int = 0
    latency_ms: dict[str, float] | None = None
    throughput_per_s: float | None = None
    energy_per_inference_j: dict[str, Any] | None = None

    def to_json(self) -> dict:
        return {"batch": self.batch, "status": self.status, "reason": self.reason,
                "kind": "measured", "method": LATENCY_METHOD, "runs": self.runs,
                "latency_ms": self.latency_ms, "throughput_per_s": self.throughput_per_s,
                "energy_per_inference_j": self.energy_per_inference_j}


@dataclass
class LocalMeasurement:
    path: str
    providers: list[str]
    onnxruntime_version: str
    threads: int | None
    warmup: int
    runs: int
    session_create_s: float
    memory: dict[str, Any]
    batches: list[BatchResult]
    device: dict[str, Any] = field(default_factory=dict)

    def batch(self, b: int) -> BatchResult | None:
        return next((r for r in self.batches if r.batch == b), None)

    def p50_ms(self, b: int) -> float | None:
        r = self.batch(b)
        return r.latency_ms["p50"] if r and r.status == "ok" and r.latency_ms else None

    def to_json(self) -> dict:
        return {"kind": "measured", "method": LATENCY_METHOD, "engine": _engine(self.providers),
                "path": self.path, "providers": self.providers,
                "onnxruntime_version": self.onnxruntime_version, "threads": self.threads,
                "warmup": self.warmup, "runs": self.runs, "device": self.device,
                "session_create_s": {"value": self.session_create_s, "kind": "measured",
                                     "method": "perf_counter around InferenceSession()"},
                "memory": self.memory, "batches": [b.to_json() for b in self.batches]}


def _engine(providers: list[str]) -> str:
    if providers and providers[0] == "TensorrtExecutionProvider":
        return "tensorrt"
    if providers and providers[0] == "CUDAExecutionProvider":
        return "ort-cuda"
    return "ort-cpu"


def make_inputs(session, batch: int, *, seq_len: int | None = None,
                input_shapes: dict[str, list[int]] | None = None, seed: int = 0) -> dict:
    """Random inputs at ``batch``: floats ~N(0,1), input_ids small ints, masks ones."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        if inp.name in (input_shapes or {}):
            shape = list(input_shapes[inp.name])
            shape[0] = batch
        else:
            shape = []
            for i, d in enumerate(inp.shape):
                if isinstance(d, int) and d > 0:
                    shape.append(d)
                elif i == 0:
                    shape.append(batch)
                elif i == 1 and seq_len and inp.name in ("input_ids", "attention_mask",
                                                          "token_type_ids", "position_ids"):
                    shape.append(seq_len)
                else:
                    hint = " or --seq-len" if "ids" in inp.name or "mask" in inp.name else ""
                    raise ModelFileError(f"cannot infer the shape of input {inp.name!r} ({inp.shape}); "
                                         f"pass --input-shape {inp.name}=1x3x224x224{hint}")
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise ModelFileError(f"input {inp.name!r} has unsupported type {inp.type}")
        if inp.name == "attention_mask":
            arr = np.ones(shape, dtype=dtype)
        elif inp.name in ("token_type_ids",):
            arr = np.zeros(shape, dtype=dtype)
        elif inp.name == "position_ids":
            arr = np.broadcast_to(np.arange(shape[-1]), shape).astype(dtype)
        elif dtype.startswith(("int", "uint")):
            arr = rng.integers(0, 100, size=shape).astype(dtype)
        elif dtype == "bool":
            arr = np.ones(shape, dtype=bool)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        feeds[inp.name] = arr
    return feeds


def create_session(onnx_path, *, providers=None, threads: int | None = None):
    """An onnxruntime session (full graph optimisations); ModelFileError when it cannot load."""
    from hackforge_edge.runtime.session import make_session

    return make_session(onnx_path, providers=providers, threads=threads)


def _estimated_energy(latency_s: float, batch: int, profile, threads_used: int) -> dict:
    """latency x (idle + util x (TDP - idle)) per sample, util = threads / usable cores."""
    mode = profile.mode()
    cores = profile.cpu_cores or 1
    util = min(1.0, threads_used / cores)
    power = mode.idle_w + util * (mode.max_w - mode.idle_w)
    band = (profile.detected or {})["energy_band"]  # factors, from energy/power_defaults.yaml
    value = latency_s * power / batch
    tdp_src = (profile.detected or {}).get("tdp_source", "profile")
    return {"value": value, "low": value * band[0], "high": value * band[1], "kind": "estimated",
            "method": f"latency x (idle {mode.idle_w:.1f} W + util {util:.2f} x (TDP {mode.max_w:.1f} W "
                      f"- idle)); TDP: {tdp_src}",
            "avg_power_w": power, "excluding_idle_j": latency_s * (power - mode.idle_w) / batch}


def _energy_from_window(window, samples: int) -> dict:
    if window.energy_j_total is None:
        return {"value": None, "low": None, "high": None, "kind": window.kind,
                "method": f"{window.method}: no domain could be read", "avg_power_w": None}
    value = window.energy_j_total / samples
    band = window.band
    return {"value": value,
            "low": value * (1 + band[0]) if band else None,
            "high": value * (1 + band[1]) if band else None,
            "kind": window.kind, "method": f"{window.method}: window energy / {samples} samples "
                                           f"({window.duration_s:.2f} s window)",
            "avg_power_w": window.avg_power_w}


def _measure_batch(run, b: int, *, warmup: int, runs: int, max_seconds: float, meter,
                   after_each, estimate) -> BatchResult:
    """Warm up, time ``run`` (one session.run at batch ``b``), and its energy per sample:
    from ``meter``'s window around the timed runs, else ``estimate(mean latency s)``."""
    from hackforge_edge.runtime.session import one_line
    from hackforge_edge.runtime.timing import runs_within, time_calls, warm_up

    name = f"benchmark-b{b}"
    opened = False
    try:
        n = runs_within(warm_up(run, warmup), runs, max_seconds, min_runs=5)
        if meter is not None:
            meter.begin(name)
            opened = True
        timing = time_calls(run, warmup=0, runs=n, after_each=after_each)
    except MemoryError:
        status = "out of memory"
    except Exception as exc:  # noqa: BLE001 - onnxruntime run failures (shape mismatch, arena OOM)
        status = one_line(exc)
    else:
        status = None
    if status is not None:
        if opened:
            meter.end(name)
        return BatchResult(b, "error", status)
    n_energy = n
    if meter is not None:
        # keep the energy window open long enough for the meter's resolution (CPU-time
        # ticks of ~10 ms for the estimate, counter updates for RAPL/NVML): more untimed
        # runs, and the energy is divided by every run made inside the window
        t_window = time.perf_counter()
        while (time.perf_counter() - t_window) + sum(timing.times_ms) / 1000.0 < MIN_ENERGY_WINDOW_S:
            run()
            n_energy += 1
    summary = timing.summary()
    mean = summary["mean"]
    lat = {k: summary[k] for k in ("p50", "p95", "p99", "mean", "min", "std")}
    energy = (_energy_from_window(meter.end(name), n_energy * b) if meter is not None
              else estimate(mean / 1000.0))
    return BatchResult(b, "ok", None, n, lat, b / (mean / 1000.0), energy)


def measure(onnx_path, *, batch_sizes=(1, 4, 8), warmup: int = 3, runs: int = 20,
            providers=None, seq_len: int | None = None, input_shapes=None, meter=None,
            threads: int | None = None, max_seconds_per_batch: float = 8.0,
            profile=None) -> LocalMeasurement:
    """Measure ``onnx_path`` on this machine at each batch size.

    ``runs`` is an upper bound: a batch whose warm-up shows it would take longer than
    ``max_seconds_per_batch`` gets fewer timed runs (at least 5; the count is recorded).
    Latencies in ms; throughput in samples/s = batch / mean latency.
    """
    import onnxruntime as ort
    import psutil

    from hackforge_edge.profiling.hardware import detect_local
    from hackforge_edge.profiling.shapes import parse_input_shapes

    if warmup < 0 or runs < 1:
        raise UsageError(f"need warmup >= 0 and runs >= 1 (got {warmup}, {runs})")
    batch_sizes = sorted({int(b) for b in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise UsageError(f"batch sizes must be positive integers, got {batch_sizes}")
    shapes = parse_input_shapes(input_shapes)
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    t0 = time.perf_counter()
    sess = create_session(onnx_path, providers=providers, threads=threads)
    session_s = time.perf_counter() - t0
    rss_loaded = proc.memory_info().rss
    rss_peak = rss_loaded
    # the local profile gives device facts (memory, cores) and, without a meter, the TDP for
    # the energy estimate; detection is cheap (/proc/cpuinfo + psutil)
    profile = profile or detect_local()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads_used = threads or (profile.cpu_cores if profile and profile.cpu_cores else usable)

    fixed_batch = None
    first = sess.get_inputs()[0]
    if first.shape and isinstance(first.shape[0], int) and first.shape[0] > 0 and \
            first.name not in shapes:
        fixed_batch = first.shape[0]

    def sample_rss():
        nonlocal rss_peak
        rss_peak = max(rss_peak, proc.memory_info().rss)

    results: list[BatchResult] = []
    for b in batch_sizes:
        if fixed_batch is not None and b != fixed_batch:
            results.append(BatchResult(b, "skipped", f"model has a fixed batch of {fixed_batch}"))
            continue
        feeds = make_inputs(sess, b, seq_len=seq_len, input_shapes=shapes)
        results.append(_measure_batch(lambda feeds=feeds: sess.run(None, feeds), b, warmup=warmup,
                                      runs=runs, max_seconds=max_seconds_per_batch, meter=meter,
                                      after_each=sample_rss,
                                      estimate=lambda s, b=b: _estimated_energy(s, b, profile, threads_used)))

    ru_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    memory = {"rss_before_bytes": int(rss_before), "rss_after_load_bytes": int(rss_loaded),
              "rss_peak_bytes": int(rss_peak), "rss_delta_bytes": int(rss_peak - rss_before),
              "process_maxrss_bytes": int(ru_peak), "kind": "measured",
              "method": "psutil RSS before/after session creation and after every timed run; "
                        "delta = peak - before (process_maxrss is the process lifetime peak)"}
    device = {}
    if profile is not None and profile.detected:
        d = profile.detected
        device = {k: d.get(k) for k in ("cpu_model", "arch", "physical_cores", "logical_cores",
                                         "usable_cores", "ghz", "isa_flags", "memory_bytes")}
    return LocalMeasurement(path=str(onnx_path), providers=list(sess.get_providers()),
                            onnxruntime_version=ort.__version__, threads=threads, warmup=warmup,
                            runs=runs, session_create_s=session_s, memory=memory,
                            batches=results, device=device)
