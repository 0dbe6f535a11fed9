"""``profile.json``: what :func:`~hackforge_edge.profiling.profiler.profile_model` found.

Three kinds of numbers, each labelled where it is stored: ``static`` (counted on the ONNX
graph), ``measured`` (on this machine, with the method) and ``projected`` (a hardware profile
applied to the static analysis, with its calibration and error band); power and energy are
``estimated`` unless a meter measured them. Units are in the field names (``_ms``, ``_bytes``,
``_w``, ``_j``, ``_per_s`` = samples per second).

Projections use the stored calibration of each hardware profile (``hf-edge calibrate``) when
one exists; otherwise ``calibration.calibrated`` is false and the band is the profile's wide
prior band. The feasibility verdict and the report read this model, never the raw JSON.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from hackforge_edge.bundle.schema import Artifact
from hackforge_edge.profiling.hardware import HardwareProfile

Precision = Literal["fp32", "fp16", "int8"]


class Part(BaseModel):
    """A nested part of an artifact: unknown fields are refused, like the artifact itself."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# ---- the model file ---------------------------------------------------------------------------
class TensorInfo(Part):
    """A declared graph input or output."""

    name: str
    shape: list[int | str] | None = Field(description="dims; a symbolic dim by its name, '?' unnamed")
    dtype: str = Field(description="numpy dtype name (e.g. float32), or the ONNX type number")


class ModelInfo(Part):
    """The profiled ONNX file."""

    path: str
    bytes: int = Field(description="file size including external weight files")
    external_data: list[str] = Field(default_factory=list, description="external weight files")
    opset: int | None = None
    producer: str = ""
    inputs: list[TensorInfo] = Field(default_factory=list)
    outputs: list[TensorInfo] = Field(default_factory=list)


# ---- static analysis (kind "static") ----------------------------------------------------------
class StaticTotals(Part):
    """Whole-graph counts at one batch size (1 MAC = 2 FLOPs)."""

    macs: int
    flops: int
    params: int
    weight_bytes: int
    bytes_moved: int = Field(description="bytes read and written by all nodes (no cache)")
    peak_activation_bytes: int = Field(description="largest set of live activations")
    nodes: int


class OpTypeCost(Part):
    count: int
    macs: int
    flops: int
    bytes_moved: int


class LayerRecord(Part):
    """One of the heaviest nodes by FLOPs."""

    name: str
    op_type: str
    category: str = Field(description="conv dwconv gemm attention elementwise norm reduce pool data "
                                      "view shape uncosted")
    macs: int
    flops: int
    bytes_moved: int
    weight_bytes: int
    params: int
    output_shape: list[int] | None = None


class StaticRecord(Part):
    """``StaticAnalysis.to_json()`` at one batch size."""

    kind: Literal["static"] = "static"
    method: str
    path: str
    batch: int
    seq_len: int | None = None
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)
    opset: int | None = None
    totals: StaticTotals
    by_op_type: dict[str, OpTypeCost] = Field(default_factory=dict)
    uncosted_ops: dict[str, int] = Field(
        default_factory=dict, description="op type -> count of nodes not costed (listed, never silently zero)")
    warnings: list[str] = Field(default_factory=list)
    top_layers: list[LayerRecord] = Field(default_factory=list, description="10 heaviest by FLOPs")


# ---- local measurement (kind "measured") ------------------------------------------------------
class Measured(Part):
    value: float
    kind: Literal["measured"] = "measured"
    method: str


class MemoryMeasurement(Part):
    """Resident set size of this process (psutil) around session creation and the timed runs."""

    rss_before_bytes: int
    rss_after_load_bytes: int
    rss_peak_bytes: int
    rss_delta_bytes: int = Field(description="peak - before: what the model added (a lower bound)")
    process_maxrss_bytes: int | None = Field(None, description="the process's lifetime peak")
    kind: Literal["measured"] = "measured"
    method: str


class LatencyStats(Part):
    """Percentiles of the timed runs, in ms."""

    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    std: float

    def percentile(self, name: str) -> float:
        """``"p50"``, ``"p95"`` or ``"p99"``."""
        return float(getattr(self, name))


class MeasuredEnergy(Part):
    """Energy per inference (per sample) of a timed batch: a meter's window, or the CPU estimate."""

    value: float | None
    low: float | None = None
    high: float | None = None
    kind: str = Field(description="measured | estimated | mixed (the meter's kind)")
    method: str
    avg_power_w: float | None = None
    excluding_idle_j: float | None = Field(None, description="CPU estimate only: the share above idle")


class BatchMeasurement(Part):
    batch: int
    status: Literal["ok", "skipped", "error"]
    reason: str | None = None
    kind: Literal["measured"] = "measured"
    method: str
    runs: int = Field(0, description="timed runs made (at most the requested number)")
    latency_ms: LatencyStats | None = None
    throughput_per_s: float | None = Field(None, description="batch / mean latency, samples/s")
    energy_per_inference_j: MeasuredEnergy | None = None


class LocalMeasurement(Part):
    """``LocalMeasurement.to_json()``: onnxruntime on this machine, warm-up excluded."""

    kind: Literal["measured"] = "measured"
    method: str
    engine: str = Field(description="ort-cpu, ort-cuda or tensorrt (the first provider)")
    path: str
    providers: list[str]
    onnxruntime_version: str
    threads: int | None = Field(None, description="intra-op threads; null = onnxruntime default")
    warmup: int
    runs: int = Field(description="timed runs requested per batch")
    device: dict[str, Any] = Field(default_factory=dict,
                                   description="cpu_model, logical_cores, memory_bytes, ... as detected")
    session_create_s: Measured
    memory: MemoryMeasurement
    batches: list[BatchMeasurement]

    def ok_batches(self) -> list[BatchMeasurement]:
        return [b for b in self.batches if b.status == "ok" and b.latency_ms is not None]


# ---- projections (kind "projected") -----------------------------------------------------------
class Band(Part):
    """A central value and its error band (the calibration residual, not a distribution)."""

    value: float
    low: float
    high: float


class PowerEstimate(Part):
    value: float
    kind: str = "estimated"
    method: str


class EnergyEstimate(Part):
    """Energy per inference (per sample) with its band."""

    value: float
    low: float
    high: float
    kind: str = "estimated"
    method: str


class MemoryBreakdown(Part):
    weights_bytes: int
    peak_activation_bytes: int
    runtime_overhead_bytes: int


class CalibrationInfo(Part):
    """Which efficiencies a projection used and how wide its band is."""

    calibrated: bool
    source: str
    band_low: float
    band_high: float
    n_points: int = 0
    rms_log_residual: float | None = None
    note: str = ""
    fitted_on: str | None = None
    device: str | None = None
    created_at: str | None = None


class Efficiencies(Part):
    eta_c: float
    eta_c_depthwise: float
    eta_m: float
    t_launch_us: float
    t_host_ms: float
    cache_speedup: float | None = None
    fp32_compute_scale: float | None = None   # fp32 compute roof multiplier (published fits)
    source: str


class Roofs(Part):
    compute_tflops: float
    bandwidth_gbs: float


class LatencyBreakdown(Part):
    """Parts of the projected latency, ms."""

    compute_bound: float
    memory_bound: float
    launch: float
    host: float


class ProjectionRecord(Part):
    """``Projection.to_json()``: one (hardware profile, power mode, precision, batch)."""

    profile: str
    display_name: str
    mode: str
    default_mode: bool = Field(description="the profile's default power mode")
    engine: str
    precision: Precision
    batch: int
    kind: Literal["projected"] = "projected"
    method: str
    latency_definition: str = Field(description="end to end incl. host overhead, no host-device copies")
    latency_ms: Band
    throughput_per_s: float = Field(description="samples/s = batch / latency")
    memory_required_bytes: int
    memory_capacity_bytes: int
    memory_available_bytes: int = Field(description="capacity minus the OS reservation")
    memory_breakdown: MemoryBreakdown
    power_w: PowerEstimate
    energy_per_inference_j: EnergyEstimate
    calibration: CalibrationInfo
    efficiencies: Efficiencies
    roofs: Roofs
    breakdown_ms: LatencyBreakdown
    n_kernels: int
    bound: Literal["compute", "memory", "overhead"]
    warnings: list[str] = Field(default_factory=list)


class SkippedProjection(Part):
    """A projection that was not made, e.g. a precision the target does not support."""

    profile: str
    mode: str | None = None
    precision: str
    batch: int
    reason: str


class PrecisionAccuracy(Part):
    """The accuracy a precision kept on held-out target data (export_validation.json)."""

    precision: Precision
    accuracy: float | None = Field(description="top-1 on the target test split, 0..1; null: not checked")
    fp32_accuracy: float | None = None
    drop_pp: float | None = Field(None, description="fp32 - this precision, percentage points")
    n_samples: int | None = None
    kind: Literal["measured", "not checked"] = "measured"
    source: str = Field(description="where the number comes from (file and field)")


class VariantProfile(Part):
    """A bundle's FP16/INT8 variant: measured here and projected at its own precision."""

    precision: Precision
    path: str = Field(description="the variant's file name in the bundle (model.int8.onnx)")
    status: str = Field(description="export_validation's verdict on the variant: accepted | rejected")
    reasons: list[str] = Field(default_factory=list)
    build_method: str | None = Field(None, description="how the variant was built (quantize.py's method)")
    accuracy: PrecisionAccuracy
    local: LocalMeasurement | None = Field(None, description="measured on this machine; null when not")


# ---- the file -----------------------------------------------------------------------------------
class Profile(Artifact):
    """profile.json: static analysis per batch size, the local measurement, projections per
    hardware profile, what was skipped, and the hardware profiles as resolved."""

    FILENAME: ClassVar[str] = "profile.json"
    # 2: precisions per target, bundle variants (measured here, accuracy kept) and fp32 accuracy
    schema_version: Literal[2] = 2
    generated_at: str
    model: ModelInfo
    static: dict[str, StaticRecord] = Field(description="batch size (as a string) -> static analysis")
    local: LocalMeasurement | None = Field(None, description="null when not measured")
    projections: list[ProjectionRecord] = Field(default_factory=list)
    skipped: list[SkippedProjection] = Field(default_factory=list)
    profiles: dict[str, HardwareProfile] = Field(
        default_factory=dict, description="name -> hardware profile as used (incl. sources, detected)")
    precisions: dict[str, list[Precision]] = Field(
        default_factory=dict, description="profile name -> the precisions projected on it")
    accuracy: dict[str, PrecisionAccuracy] = Field(
        default_factory=dict, description="precision -> accuracy kept on target data (fp32 and variants)")
    variants: dict[str, VariantProfile] = Field(
        default_factory=dict, description="precision -> the bundle's variant, measured here")

    def static_at(self, batch: int) -> StaticRecord | None:
        return self.static.get(str(batch))
