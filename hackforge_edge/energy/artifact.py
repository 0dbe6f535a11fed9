"""``training_carbon.json``: the energy and CO2 of making the model, per pipeline phase.

Every figure carries its ``kind`` (measured | estimated | cache-hit, and "mixed" for totals
over both) and ``method`` (nvml-energy-counter, rapl, cpu-tdp-estimate, ...); estimates carry a
relative ``band`` [low, high] (e.g. [-0.6, 1.9] = -60 % / +190 %). Units are in the names.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from hackforge_edge.bundle.schema import Artifact

Band = Optional[tuple[float, float]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseEnergy(_Strict):
    """One metered phase (source_pretrain, target_transfer, export, validation, profiling)."""

    phase: str
    duration_s: float
    energy_j: Optional[float] = Field(description="null when no backend could read it")
    energy_kwh: Optional[float]
    avg_power_w: Optional[float]
    method: str
    kind: str
    band: Band = None
    co2_kg: Optional[float]
    energy_j_by_domain: dict[str, float] = Field(default_factory=dict)
    tdp_w: Optional[float] = None
    tdp_origin: Optional[str] = None
    samples: Optional[int] = None
    incomplete: Optional[bool] = None
    unread_domains: Optional[list[str]] = None
    note: Optional[str] = None
    anomalies: Optional[list[str]] = None


class Totals(_Strict):
    duration_s: float
    energy_j: float
    energy_kwh: float
    co2_kg: float
    band: Band = None
    complete: bool
    incomplete_phases: list[str] = Field(default_factory=list)
    note: Optional[str] = None


class Grid(_Strict):
    """energy.carbon.GridSpec: the electricity behind the CO2 figures."""

    region: str
    intensity_g_per_kwh: float
    pue: float
    basis: str
    year: Optional[int] = None
    source: str
    country_name: str = ""
    pue_note: str = ""


class TdpSource(_Strict):
    tdp_w: float
    origin: Optional[str] = None


class SourcePretrainOneOff(_Strict):
    """The cached source model's pretraining, metered in the run that made it (not in totals)."""

    energy_j: Optional[float]
    kind: str
    method: str
    band: Band = None
    duration_s: float
    bundle: Optional[str] = None
    measured_at: Optional[str] = None


class TrainingCarbon(Artifact):
    FILENAME: ClassVar[str] = "training_carbon.json"
    schema_version: Literal[1] = 1

    written_at: str
    kind: str = Field(description="measured | estimated | mixed | cache-hit, over all phases")
    methods: list[str]
    tdp_source: Optional[list[TdpSource]] = None
    phases: list[PhaseEnergy]
    totals: Totals
    grid: Grid
    formula: str
    tdp_w: Optional[float] = None
    tdp_origin: Optional[str] = None
    meter_skipped: Optional[list[tuple[str, str]]] = Field(
        default=None, description="[backend, why it was not used] for each meter backend skipped")
    source_pretrain_one_off: Optional[SourcePretrainOneOff] = None
    experiment_id: Optional[str] = None
    note: Optional[str] = None   # what the phases cover when it is not a training run (a merge)

    def phase(self, name: str) -> PhaseEnergy | None:
        return next((p for p in self.phases if p.phase == name), None)
