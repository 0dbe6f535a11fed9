"""``report.json``: the feasibility report as data, rendered to report.md and report.html.

Sections are tables whose cells carry their text, the kind of number they show (a key of
``legend``: measured, estimated, projected, static; none for settings and names) and the method
behind it. The requirements, thresholds, rules and grid the verdict used are echoed.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hackforge_edge.bundle.schema import Artifact
from hackforge_edge.feasibility.artifact import GridInfo, ProfileSummary, Verdict
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.requirements import Requirements
from hackforge_edge.profiling.artifact import ModelInfo, Part

Kind = Literal["measured", "estimated", "projected", "static"]


class Cell(Part):
    """One table cell: its text, the kind of number it is (None: a name or setting), the method."""

    text: str
    kind: Kind | None = None
    method: str | None = None
    verdict: Verdict | None = Field(None, description="set on verdict cells (rendered as a badge)")


class Table(Part):
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    notes: list[str] = Field(default_factory=list)
    methods: dict[str, list[str]] = Field(
        default_factory=dict, description="column -> the distinct methods of its cells")


class ReasonBlock(Part):
    """The reasons behind one feasibility entry's verdict, in words."""

    title: str
    verdict: Verdict
    reasons: list[str]


class AnswerPoint(Part):
    """One deployable option: a target at a mode and precision, what it needs and costs."""

    profile: str
    display_name: str | None = None
    mode: str
    precision: str
    batch: int
    verdict: Verdict
    devices: int | None
    latency_ms: float | None = Field(description="at the judged batch (projected or measured)")
    kind: str = Field(description="projected | measured")
    accuracy: float | None = Field(description="top-1 kept at this precision on target data")
    accuracy_drop_pp: float | None
    cost_total: float | None = Field(description="purchase + energy over the horizon")
    cost_per_million: float | None
    purchase: float | None = None
    price_basis: str | None = None
    energy_kwh_per_year: float | None
    co2_kg_per_year: float | None


class Answer(Part):
    """The first screen: what to deploy for the workload, and the runners-up."""

    workload: str = Field(description="the requirements in words")
    ranked_by: str
    recommended: AnswerPoint | None
    none_reason: str | None = Field(None, description="why nothing is recommended")
    runners_up: list[AnswerPoint] = Field(default_factory=list)
    currency: str
    horizon_years: float | None
    model_accuracy: float | None = Field(description="FP32 top-1 on the target test split (metrics.json)")
    training_kwh: float | None
    training_co2_kg: float | None
    training_kind: str | None = Field(description="measured | estimated (training_carbon.json)")


class Report(Artifact):
    """report.json: the verdict table first, then the measurement, static analysis, model
    quality, training carbon, export validation, comparison, skipped projections and manifest
    sections that the bundle has data for."""

    FILENAME: ClassVar[str] = "report.json"
    # 2: typed entries and checks (version 1 was the untyped dict of hf-edge <= 0.1)
    # 3: ``answer`` (the recommendation, first on the page) and ``ranking``
    schema_version: Literal[3] = 3
    generated_at: str | None = None
    bundle: str | None = Field(None, description="the bundle directory the report was built from")
    title: str
    answer: Answer | None = Field(None, description="the recommendation for the workload")
    legend: dict[Kind, str]
    model: ModelInfo | None = None
    counts: dict[Verdict, int]
    summary: dict[str, ProfileSummary]
    requirements: Requirements
    thresholds: FeasibilityConfig
    rules: dict[str, str]
    grid: GridInfo | None = None
    reasons: list[ReasonBlock]
    figures: dict[str, str] = Field(default_factory=dict, description="figure name -> figures/<name>.png")
    figures_note: str | None = Field(None, description="why figures were not drawn, and how to get them")
    sections: list[Table]
