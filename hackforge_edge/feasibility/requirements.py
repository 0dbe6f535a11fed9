"""What a deployment must achieve: the input of the feasibility verdict.

A :class:`Requirements` comes from a YAML file, from CLI flags, or both; flags override the
file field by field (:func:`load_requirements` is the one place that decides precedence).
Impossible values (negative, zero, a memory headroom of 100 % or more, more than 24 operating
hours a day) raise :class:`~hackforge_edge.errors.RequirementsError` with one line naming every
offending field.

Units live in the names: ``_ms`` milliseconds, ``_per_s`` items per second, ``_w`` watts,
``_g_per_kwh`` grams CO2e per kWh. ``memory_headroom`` is a fraction of the device memory that
must stay free (0.2 = use at most 80 %).

YAML layout (flat keys, or grouped under ``workload:`` / ``grid:``)::

    max_latency_ms: 50
    percentile: p99
    min_throughput_per_s: 20
    memory_headroom: 0.2
    power_budget_w: 15
    workload: {items_per_day: 20000, operating_hours_per_day: 12}
    grid: {region: FRA, pue: 1.0}
    cost: {tariff_per_kwh: 0.25, currency: USD, horizon_years: 5, price_override: {nvidia-t4: 1800}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hackforge_edge.errors import RequirementsError

Percentile = Literal["p50", "p95", "p99"]

# Sections a YAML file may group keys under; their keys are flattened into the model.
_SECTIONS = ("workload", "grid", "carbon", "latency", "cost")


class Requirements(BaseModel):
    """Targets a deployment must meet. ``None`` means "not required" (that check is skipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_latency_ms: float | None = Field(
        None, gt=0, description="latency limit per request (ms) at `percentile`")
    percentile: Percentile = Field(
        "p99", description="which latency percentile the limit applies to (p50, p95, p99)")
    min_throughput_per_s: float | None = Field(
        None, gt=0, description="minimum items per second one device must sustain")
    memory_headroom: float = Field(
        0.2, ge=0, lt=1, description="fraction of device memory that must stay free (0 <= h < 1)")
    power_budget_w: float | None = Field(
        None, gt=0, description="maximum device power draw under load (W)")
    items_per_day: float | None = Field(
        None, gt=0, description="workload: items (inferences) per day")
    operating_hours_per_day: float = Field(
        24.0, gt=0, le=24, description="workload: hours per day the devices are powered and serving")
    region: str | None = Field(
        None, min_length=1, description="grid region code for CO2 (e.g. FRA, DEU, World)")
    grid_intensity_g_per_kwh: float | None = Field(
        None, gt=0, description="grid carbon intensity (g CO2e/kWh); overrides the region's value")
    pue: float | None = Field(
        None, ge=1, description="power usage effectiveness (>= 1; 1.0 = device energy only)")
    tariff_per_kwh: float | None = Field(
        None, ge=0, description="electricity price, `currency` per kWh at the meter (PUE applies)")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$",
                          description="currency of the tariff and of price_override (ISO 4217)")
    horizon_years: float | None = Field(
        None, gt=0, description="years the devices run: the cost-of-ownership horizon")
    price_override: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="hardware profile name (or this-machine) -> price per device in `currency`")
    max_accuracy_drop_pp: float = Field(
        1.0, ge=0, description="largest top-1 accuracy drop vs FP32 (percentage points on target "
                               "data) a recommended precision may have")

    @field_validator("percentile", mode="before")
    @classmethod
    def _normalise_percentile(cls, v: Any) -> Any:
        # accept 99, "99", "P99", "p99"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = f"p{int(v)}"
        if isinstance(v, str):
            v = v.strip().lower()
            if not v.startswith("p"):
                v = "p" + v
        return v

    def is_empty(self) -> bool:
        """True when no latency, throughput, power or workload target is set."""
        return all(getattr(self, f) is None for f in (
            "max_latency_ms", "min_throughput_per_s", "power_budget_w", "items_per_day"))


def _flatten(data: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            for sub, v in value.items():
                flat[str(sub)] = v
        else:
            flat[str(key)] = value
    # friendly aliases for the names the CLI flags use
    aliases = {"hours_per_day": "operating_hours_per_day", "grid_intensity": "grid_intensity_g_per_kwh",
               "min_throughput": "min_throughput_per_s", "intensity_g_per_kwh": "grid_intensity_g_per_kwh",
               "max_accuracy_drop": "max_accuracy_drop_pp", "tariff": "tariff_per_kwh",
               "horizon": "horizon_years"}
    for alias, name in aliases.items():
        if alias in flat:
            if name in flat:
                raise RequirementsError(f"{source}: both {alias!r} and {name!r} given; keep one")
            flat[name] = flat.pop(alias)
    return flat


def _one_line(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "requirements"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            known = ", ".join(Requirements.model_fields)
            parts.append(f"unknown field {field!r} (known: {known})")
            continue
        got = err.get("input")
        parts.append(f"{field}: {msg} (got {got!r})")
    return f"impossible requirement in {source}: " + "; ".join(parts)


def read_requirements_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a requirements YAML (or JSON) file into flat field -> value pairs (not validated)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RequirementsError(f"{path}: requirements file not found") from None
    except OSError as exc:
        raise RequirementsError(f"{path}: cannot read requirements file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RequirementsError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RequirementsError(f"{path}: expected a mapping of requirement fields, got {type(data).__name__}")
    return _flatten(data, str(path))


def load_requirements(path: str | os.PathLike | None = None, **overrides: Any) -> Requirements:
    """Build and validate requirements: file values first, then every override that is not None.

    ``overrides`` use the field names of :class:`Requirements` (CLI flags map onto them); an
    override of ``None`` means "flag not given" and leaves the file's value (or the default).
    """
    values: dict[str, Any] = read_requirements_file(path) if path is not None else {}
    source = str(path) if path is not None else "flags"
    given = {k: v for k, v in overrides.items() if v is not None}
    if given and path is not None:
        source = f"{path} + flags"
    values.update(_flatten(given, "flags"))
    try:
        return Requirements(**values)
    except ValidationError as exc:
        raise RequirementsError(_one_line(exc, source)) from None
