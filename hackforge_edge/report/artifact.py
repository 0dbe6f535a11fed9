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


class Report(Artifact):
    """report.json: the verdict table first, then the measurement, static analysis, model
    quality, training carbon, export validation, comparison, skipped projections and manifest
    sections that the bundle has data for."""

    FILENAME: ClassVar[str] = "report.json"
    # 2: typed entries and checks (version 1 was the untyped dict of hf-edge <= 0.1)
    schema_version: Literal[2] = 2
    generated_at: str | None = None
    bundle: str | None = Field(None, description="the bundle directory the report was built from")
    title: str
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
