"""Every threshold of the feasibility verdict, in one place (echoed in feasibility.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FeasibilityConfig(BaseModel):
    """Thresholds of the verdict. Invalid values raise ``ValueError`` (pydantic's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    marginal_margin: float = Field(
        0.10, ge=0, lt=1,
        description="fraction of a limit inside which a pass is only MARGINAL (latency, throughput, power)")
    percentile_band_position: dict[str, float] = Field(
        default_factory=lambda: {"p50": 0.0, "p95": 0.5, "p99": 1.0},
        description="where in [central value, band high end] a latency percentile is taken "
                    "(0 = value, 1 = high)")
    utilisation_target: float = Field(
        0.7, gt=0, le=1, description="planned busy fraction of each device when sizing the fleet")
    days_per_year: float = Field(365.0, gt=0, description="operating days per year for energy and CO2")

    @field_validator("percentile_band_position")
    @classmethod
    def _positions_in_unit_interval(cls, v: dict[str, float]) -> dict[str, float]:
        for p, f in v.items():
            if not 0 <= f <= 1:
                raise ValueError(f"percentile_band_position[{p}] must be in [0, 1]")
        return v
