"""``feasibility.json``: a verdict per (hardware profile, power mode, engine, precision).

Built by :func:`~hackforge_edge.feasibility.verdict.evaluate` from a
:class:`~hackforge_edge.profiling.artifact.Profile`, the requirements and the grid; read by the
report and the CLI. Every check carries its numbers, its kind (``projected`` from a hardware
profile, ``measured`` for the profile ``this-machine``) and a reason written out in numbers.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hackforge_edge.bundle.schema import Artifact
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.requirements import Requirements
from hackforge_edge.profiling.artifact import (
    Band,
    CalibrationInfo,
    ModelInfo,
    Part,
    PowerEstimate,
    PrecisionAccuracy,
)

Verdict = Literal["PASS", "MARGINAL", "FAIL"]
PointKind = Literal["projected", "measured"]


class GridInfo(Part):
    """The electricity behind the CO2 figures (``energy.carbon.GridSpec`` as stored)."""

    region: str
    intensity_g_per_kwh: float
    pue: float
    basis: str = Field(description="lifecycle, combustion, or unspecified (user-supplied)")
    year: int | None = None
    source: str
    country_name: str = ""
    pue_note: str = ""


# ---- checks --------------------------------------------------------------------------------------
class _Check(Part):
    verdict: Verdict
    reason: str = Field(description="the numbers and the rule, e.g. '... band straddles limit => MARGINAL'")
    kind: str = Field(description="projected | measured | estimated: the kind of the judged number")


class LatencyCheck(_Check):
    percentile: str
    limit_ms: float
    value_ms: float | None
    low_ms: float | None
    high_ms: float | None
    band_position: float = Field(description="config.percentile_band_position[percentile]")
    decisive_ms: float | None = Field(description="value + band_position x (high - value)")


class ThroughputCheck(_Check):
    min_per_s: float
    value_per_s: float | None
    low_per_s: float | None
    high_per_s: float | None


class MemoryCheck(_Check):
    required_bytes: int | None
    capacity_bytes: int | None
    headroom: float
    usable_bytes: float | None = Field(description="capacity x (1 - headroom)")


class PowerCheck(_Check):
    budget_w: float
    power_w: float | None


class Checks(Part):
    """The checks a requirement asked for (memory is always judged)."""

    latency: LatencyCheck | None = None
    throughput: ThroughputCheck | None = None
    memory: MemoryCheck
    power: PowerCheck | None = None

    def present(self) -> list[_Check]:
        return [c for c in (self.latency, self.throughput, self.memory, self.power) if c is not None]


# ---- workload, energy, CO2 --------------------------------------------------------------------------
class EnergyPerInference(Part):
    """J per inference (per sample), with its band; null value when nothing gives it."""

    value: float | None
    low: float | None = None
    high: float | None = None
    kind: str | None = None
    method: str | None = None


class Workload(Part):
    items_per_day: float
    operating_hours_per_day: float
    required_rate_per_s: float
    utilisation_target: float
    throughput_per_device_per_s: float | None
    kind: Literal["projected"] = Field("projected", description="a fleet size derived from the throughput")
    method: str
    devices_needed: int | None
    devices_needed_band_high: int | None = Field(description="devices at the throughput band's low end")
    busy_fraction: float | None = Field(description="share of operating hours each device is busy")


class EnergyPerDay(Part):
    value: float | None = Field(description="kWh per day: active + idle")
    active_kwh: float | None
    idle_kwh: float | None
    idle_power_w: float | None
    idle_power_source: str | None
    kind: str = "estimated"
    method: str
    included: str = Field(description="what is and is not counted")


class EnergyPerYear(Part):
    value: float | None = Field(description="kWh per year")
    band: tuple[float, float] | None
    days_per_year: float
    kind: str = "estimated"
    method: str


class Co2PerYear(Part):
    value: float = Field(description="kg CO2e per year")
    band: tuple[float, float] | None
    intensity_g_per_kwh: float
    pue: float
    region: str | None
    basis: str | None
    year: int | None
    source: str | None
    kind: str = "estimated"
    method: str


class Cost(Part):
    """Cost of ownership over the horizon for the workload (feasibility/cost.py has the rule)."""

    currency: str
    horizon_years: float
    devices: int = Field(description="devices needed for the workload (projected)")
    price_per_device: float
    price_basis: str = Field(description="vendor-list | retailer | assumed | override")
    price_date: str | None
    price_source: str
    purchase: float = Field(description="devices x price_per_device")
    energy_kwh: float = Field(description="device energy over the horizon (estimated)")
    pue: float
    tariff_per_kwh: float
    energy_cost: float = Field(description="energy_kwh x pue x tariff_per_kwh")
    co2_kg: float | None = Field(description="CO2e over the horizon; null without a grid")
    total: float = Field(description="purchase + energy_cost")
    inferences: float = Field(description="items_per_day x days_per_year x horizon_years")
    cost_per_million_inferences: float
    kind: Literal["estimated"] = "estimated"
    method: str
    excluded: str = Field(description="what the total does not count")


class RankedTarget(Part):
    """One line of the ranking: a target's recommended point and its cost per million inferences."""

    rank: int
    profile: str
    mode: str
    precision: str
    batch: int
    verdict: Verdict
    devices: int
    cost_per_million_inferences: float
    total: float
    currency: str


# ---- entries -----------------------------------------------------------------------------------------
class BatchVerdict(Part):
    batch: int
    verdict: Verdict
    latency_ms: float | None
    throughput_per_s: float | None


class Entry(Part):
    """The verdict for one (profile, mode, engine, precision) at its best batch size."""

    profile: str = Field(description="hardware profile name, or 'this-machine' for the local measurement")
    mode: str
    engine: str
    precision: str
    batch: int = Field(description="the batch judged (best verdict, then highest throughput)")
    verdict: Verdict = Field(description="the worst of the checks")
    reasons: list[str]
    checks: Checks
    kind: PointKind
    method: str
    latency_definition: str
    latency_ms: Band | None
    throughput_per_s: float | None
    memory_required_bytes: int | None
    memory_capacity_bytes: int | None
    memory_method: str | None = None
    power_w: PowerEstimate | None = None
    calibration: CalibrationInfo | None = None
    energy_per_inference_j: EnergyPerInference
    energy_kwh_per_1000_inferences: float | None = None
    workload: Workload | None = None
    energy_per_day_kwh: EnergyPerDay | None = None
    energy_per_year_kwh: EnergyPerYear | None = None
    co2_kg_per_year: Co2PerYear | None = None
    notes: list[str] = Field(default_factory=list)
    batches: list[BatchVerdict] = Field(default_factory=list, description="every batch size judged")
    accuracy: PrecisionAccuracy | None = Field(
        None, description="what this precision kept on target data; null: not checked")
    recommendable: bool = Field(
        False, description="feasible (PASS/MARGINAL) and its precision's accuracy drop is known and "
                           "within requirements.max_accuracy_drop_pp (fp32 is the reference)")
    recommendation_note: str = Field("", description="why it may or may not be recommended")
    cost: Cost | None = Field(None, description="cost of ownership; null: see cost_note")
    cost_note: str | None = None


class BestPoint(Part):
    mode: str
    engine: str
    precision: str
    batch: int


class Recommended(BestPoint):
    """The point recommended for a target: feasible, accuracy kept, then the ranking rule."""

    verdict: Verdict
    throughput_per_s: float | None
    accuracy: float | None = Field(description="top-1 kept at this precision on target data")
    accuracy_drop_pp: float | None
    rule: str


class ProfileSummary(Part):
    best_verdict: Verdict
    best: BestPoint
    recommended: Recommended | None = Field(
        None, description="null: no feasible point whose precision kept its accuracy")


class Feasibility(Artifact):
    """feasibility.json: the requirements and thresholds used, the rules in words, one entry per
    (profile, mode, engine, precision), the best verdict per profile, and counts."""

    FILENAME: ClassVar[str] = "feasibility.json"
    # 2: typed entries and checks (version 1 was the untyped dict of hf-edge <= 0.1)
    # 3: per-entry precision accuracy + recommendable + cost; per-profile recommended point;
    #    ranking by cost per million inferences
    schema_version: Literal[3] = 3
    model: ModelInfo | None = None
    requirements: Requirements
    config: FeasibilityConfig
    grid: GridInfo | None = Field(None, description="null: no CO2 computed")
    rules: dict[str, str] = Field(description="each rule in words (latency, throughput, memory, ...)")
    entries: list[Entry]
    summary: dict[str, ProfileSummary] = Field(description="profile -> its best verdict and where")
    ranking: list[RankedTarget] = Field(
        default_factory=list, description="targets with a recommended point and a cost, cheapest "
                                          "per million inferences first")
    counts: dict[Verdict, int]
