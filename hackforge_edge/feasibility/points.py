"""Operating points: what the verdict judges, from a profile's projections and its local measurement.

A projection becomes a point of kind ``projected`` (latency with its calibration band); each
timed batch of the local measurement becomes a point of kind ``measured`` for the profile
``this-machine`` (latency = the measured percentile the requirement names, no band).
"""

from __future__ import annotations

from dataclasses import dataclass

from hackforge_edge.feasibility.artifact import EnergyPerInference, PointKind
from hackforge_edge.profiling.artifact import (
    Band,
    BatchMeasurement,
    CalibrationInfo,
    LocalMeasurement,
    PowerEstimate,
    Profile,
    ProjectionRecord,
)
from hackforge_edge.profiling.hardware import HardwareProfile
from hackforge_edge.profiling.project import BYTES_SCALE

MEASURED_PROFILE = "this-machine"
MEASURED_MEMORY_METHOD = ("max(measured RSS growth over session creation + timed runs (psutil), "
                          "static weights + peak activations at this batch)")


@dataclass(frozen=True)
class OperatingPoint:
    """One (target, mode, engine, precision, batch) with the numbers the checks judge."""

    profile: str
    mode: str
    engine: str
    precision: str
    batch: int
    kind: PointKind
    method: str
    latency_definition: str
    latency_ms: Band | None
    throughput_per_s: float | None
    memory_required_bytes: int | None
    memory_capacity_bytes: int | None
    memory_method: str | None
    power_w: PowerEstimate | None
    energy_per_inference_j: EnergyPerInference
    idle_power_w: float | None
    idle_power_source: str | None
    calibration: CalibrationInfo | None

    @property
    def group(self) -> tuple[str, str, str, str]:
        return (self.profile, self.mode, self.engine, self.precision)

    def throughput_band(self) -> tuple[float | None, float | None, float | None]:
        """(value, low, high) per device: throughput ~ 1 / latency at a fixed batch, so the band
        follows from the latency band."""
        t, lat = self.throughput_per_s, self.latency_ms
        if t is None or lat is None or not (lat.value and lat.low and lat.high):
            return t, t, t
        return t, t * lat.value / lat.high, t * lat.value / lat.low


def operating_points(profile: Profile, percentile: str) -> list[OperatingPoint]:
    """Every projection, then the local measurement's timed batches."""
    points = [from_projection(p, profile.profiles.get(p.profile)) for p in profile.projections]
    if profile.local is not None:
        points += measured_points(profile, profile.local, percentile)
    for precision, variant in profile.variants.items():
        if variant.local is not None:
            points += measured_points(profile, variant.local, percentile, precision=precision)
    return points


def from_projection(p: ProjectionRecord, hw: HardwareProfile | None) -> OperatingPoint:
    idle_w, idle_src = None, None
    if hw is not None:
        idle_w = hw.mode(p.mode).idle_w
        idle_src = f"profile {p.profile} power mode {p.mode} idle_w (estimated)"
    e = p.energy_per_inference_j
    return OperatingPoint(
        profile=p.profile, mode=p.mode, engine=p.engine, precision=p.precision, batch=p.batch,
        kind="projected", method=p.method, latency_definition=p.latency_definition,
        latency_ms=p.latency_ms, throughput_per_s=p.throughput_per_s,
        memory_required_bytes=p.memory_required_bytes, memory_capacity_bytes=p.memory_capacity_bytes,
        memory_method=None, power_w=p.power_w,
        energy_per_inference_j=EnergyPerInference(value=e.value, low=e.low, high=e.high,
                                                  kind=e.kind, method=e.method),
        idle_power_w=idle_w, idle_power_source=idle_src, calibration=p.calibration)


def measured_points(profile: Profile, local: LocalMeasurement, percentile: str,
                    precision: str = "fp32") -> list[OperatingPoint]:
    """The local measurement as points of kind "measured" (no band).

    Latency is the measured percentile (p50/p95/p99 of the timed runs). Memory is what the model
    adds to a process: the whole process RSS would count whatever else the caller holds (inside
    train-and-export: torch and the training data), and the RSS growth alone undercounts when the
    allocator reuses freed memory, so it is the larger of the RSS growth and the static need
    (weights + peak activations at that batch), against this machine's memory. Power and energy
    are the meter's (its kind; usually "estimated" without RAPL/NVML)."""
    hw = profile.profiles.get("local")
    idle_w = hw.mode().idle_w if hw is not None else None
    idle_src = f"profile local power mode {hw.default_mode} idle_w (estimated)" if hw is not None else None
    capacity = local.device.get("memory_bytes")
    out = []
    for b in local.ok_batches():
        lat = b.latency_ms.percentile(percentile)
        static = profile.static_at(b.batch)
        # a variant's weights and activations shrink with its precision (as in the projection)
        static_need = (int((static.totals.weight_bytes + static.totals.peak_activation_bytes)
                           * BYTES_SCALE[precision]) if static is not None else None)
        required = max(v for v in (local.memory.rss_delta_bytes, static_need) if v is not None)
        out.append(OperatingPoint(
            profile=MEASURED_PROFILE, mode="measured", engine=local.engine, precision=precision,
            batch=b.batch, kind="measured", method=b.method,
            latency_definition=f"measured {percentile} of {b.runs} timed runs "
                               "(onnxruntime session.run wall clock, input already in memory)",
            latency_ms=Band(value=lat, low=lat, high=lat), throughput_per_s=b.throughput_per_s,
            memory_required_bytes=int(required),
            memory_capacity_bytes=int(capacity) if capacity is not None else None,
            memory_method=MEASURED_MEMORY_METHOD if static_need is not None
            else "measured RSS growth over session creation + timed runs (psutil; a lower bound)",
            power_w=_measured_power(b), energy_per_inference_j=_measured_energy(b),
            idle_power_w=idle_w, idle_power_source=idle_src, calibration=None))
    return out


def _measured_power(b: BatchMeasurement) -> PowerEstimate | None:
    e = b.energy_per_inference_j
    if e is None or e.avg_power_w is None:
        return None
    return PowerEstimate(value=e.avg_power_w, kind=e.kind, method=e.method)


def _measured_energy(b: BatchMeasurement) -> EnergyPerInference:
    e = b.energy_per_inference_j
    if e is None:
        return EnergyPerInference(value=None, method="not measured")
    return EnergyPerInference(value=e.value, low=e.low if e.low is not None else e.value,
                              high=e.high if e.high is not None else e.value,
                              kind=e.kind, method=e.method)
