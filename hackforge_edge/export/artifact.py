"""``export_validation.json``: how the ONNX file was made and how closely it matches PyTorch,
plus each FP16/INT8 variant's build record and its judgement on held-out target data.

Values are compared at input shapes other than the export shapes (``input_shapes`` vs
``export_input_shapes``); every output has its own max abs / rel difference and tolerances.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hackforge_edge.bundle.schema import Artifact

Shapes = dict[str, list[int]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportInfo(_Strict):
    """export.onnx_export.ExportResult as written."""

    path: str
    exporter: str = Field(description="dynamo | legacy | skl2onnx")
    fallback_reason: Optional[str] = None
    opset: int
    file_size_bytes: int
    external_data_path: Optional[str] = None
    node_count: int
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[str, str]]
    export_input_shapes: Shapes
    torch_version: Optional[str] = Field(default=None, description="null for scikit-learn models")
    onnx_version: str
    duration_s: float
    warnings: list[str] = Field(default_factory=list)


class OutputDiff(_Strict):
    """One output, onnxruntime vs PyTorch on the same inputs (null diff = not finite)."""

    shape: list[int]
    shape_checked: bool
    max_abs_diff: Optional[float]
    max_rel_diff: Optional[float]
    finite: bool
    passed: bool
    atol: float
    rtol: float


class VariantBuild(BaseModel):
    """How a variant was made (export.quantize); the quantiser's settings are kept as written."""

    model_config = ConfigDict(extra="allow")

    variant: str
    path: str
    source_path: str
    size_bytes: int
    source_size_bytes: int
    size_ratio: float
    method: str
    settings: dict[str, Any] = Field(default_factory=dict)
    duration_s: float


class VariantAccuracy(_Strict):
    fp32: float
    variant: float
    drop_pp: float
    agreement_top1_with_fp32: float
    n_samples: int
    method: str


class LatencySummary(_Strict):
    median_ms: float
    p90_ms: float
    min_ms: float


class VariantLatency(_Strict):
    fp32: LatencySummary
    variant: LatencySummary
    speedup_vs_fp32: Optional[float]
    batch_size: int
    runs: int
    warmup_runs: int
    threads: Optional[int] = None
    method: str


class VariantValidation(_Strict):
    """export.validate.validate_variant: accuracy/latency are null when the variant could not
    be loaded or run (its reasons say why)."""

    path: str
    fp32_path: str
    size_bytes: int
    fp32_size_bytes: int
    size_ratio: float
    max_abs_diff_logits: Optional[float]
    accuracy: Optional[VariantAccuracy] = None
    latency: Optional[VariantLatency] = None
    max_accuracy_drop_pp: float
    min_speedup: Optional[float] = None
    status: Literal["accepted", "rejected"]
    reasons: list[str] = Field(default_factory=list)

    @field_validator("accuracy", "latency", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == {} else v


class Variant(_Strict):
    build: VariantBuild
    validation: VariantValidation


class ExportValidation(Artifact):
    FILENAME: ClassVar[str] = "export_validation.json"
    schema_version: Literal[1] = 1

    export: ExportInfo
    onnx_path: str
    provider: str
    onnxruntime_version: str
    method: str
    atol: float
    rtol: float
    input_shapes: Shapes
    export_input_shapes: Optional[Shapes] = None
    shapes_differ_from_export: Optional[bool] = None
    outputs: dict[str, OutputDiff]
    passed: bool
    variants: dict[str, Variant] = Field(default_factory=dict)

    @property
    def worst_abs_diff(self) -> float | None:
        diffs = [o.max_abs_diff for o in self.outputs.values()]
        return None if any(d is None for d in diffs) else max(diffs, default=0.0)
