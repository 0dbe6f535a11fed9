"""From energy to CO2: ``CO2 [kg] = energy [kWh] x PUE x grid intensity [kg/kWh]``.

Grid intensities come from ``grid_intensity.yaml`` (dated, sourced, lifecycle or combustion
basis) and are always overridable. PUE defaults to 1.0, i.e. IT energy only.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass
from typing import Any

from hackforge_edge.energy.base import load_energy_data
from hackforge_edge.errors import MeterError


@dataclass(frozen=True)
class GridSpec:
    """The electricity behind a CO2 figure. ``basis`` is "lifecycle", "combustion", or
    "unspecified" for a user-supplied intensity whose basis we cannot know."""

    region: str
    intensity_g_per_kwh: float
    pue: float
    basis: str
    year: int | None
    source: str
    country_name: str = ""
    pue_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def regions() -> dict[str, dict]:
    return load_energy_data("grid_intensity")["regions"]


def _check_range(label: str, value: float, low: float, high: float, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MeterError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < low or v > high:
        raise MeterError(f"{label} {value} {unit} is out of range [{low:g}, {high:g}] {unit}")
    return v


def _lookup(region: str) -> tuple[str, dict]:
    table = regions()
    key = region.strip().upper().replace("-", "_").replace(" ", "_")
    if key in table:
        return key, table[key]
    by_name = {row["name"].upper(): code for code, row in table.items()}
    if region.strip().upper() in by_name:
        code = by_name[region.strip().upper()]
        return code, table[code]
    label = {code: f"{code} ({row['name']})" for code, row in table.items()}
    names = {row["name"].upper(): code for code, row in table.items()}
    close: list[str] = []
    for cand in difflib.get_close_matches(key, list(table) + list(names), n=4, cutoff=0.5):
        code = names.get(cand, cand)
        if label[code] not in close:
            close.append(label[code])
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise MeterError(f"unknown grid region {region!r}{hint} (known: {', '.join(table)}; "
                     "or pass --grid-intensity G_PER_KWH)")


def resolve_grid(region: str | None = None, grid_intensity_g_per_kwh: float | None = None,
                 pue: float | None = None) -> GridSpec:
    """Decide the grid: an explicit intensity (g CO2e/kWh) wins, else ``region`` (ISO 3166
    alpha-3, EU27, WORLD, WORLD_COMBUSTION, or a country name), else the WORLD default.
    ``pue`` defaults to 1.0 (IT energy only). Raises MeterError on unknown regions (with close
    matches), intensities outside [0, 2000] g/kWh, or PUE outside [1.0, 3.0]."""
    data = load_energy_data("grid_intensity")
    limits = data["limits"]
    pue_cfg = data["pue"]
    if pue is None:
        pue_v, pue_note = float(pue_cfg["default"]), pue_cfg["default_note"]
    else:
        pue_v = _check_range("PUE", pue, float(limits["pue_min"]), float(limits["pue_max"]), "")
        pue_note = "user-supplied"
    code, row = _lookup(region if region is not None else data["default_region"])
    if grid_intensity_g_per_kwh is not None:
        value = _check_range("grid intensity", grid_intensity_g_per_kwh, 0.0,
                             float(limits["intensity_g_per_kwh_max"]), "g/kWh")
        return GridSpec(region=code if region is not None else "custom", intensity_g_per_kwh=value,
                        pue=pue_v, basis="unspecified", year=None,
                        source="user-supplied (--grid-intensity)",
                        country_name=row["name"] if region is not None else "", pue_note=pue_note)
    return GridSpec(region=code, intensity_g_per_kwh=float(row["intensity_g_per_kwh"]), pue=pue_v,
                    basis=row["basis"], year=int(row["year"]), source=row["source"],
                    country_name=row["name"], pue_note=pue_note)


def co2_kg(energy_kwh: float, grid: GridSpec) -> float:
    """kg CO2e for ``energy_kwh`` of IT energy: kWh x PUE x g/kWh / 1000."""
    if energy_kwh is None or not math.isfinite(energy_kwh) or energy_kwh < 0:
        raise MeterError(f"energy must be a finite number >= 0 kWh, got {energy_kwh!r}")
    return energy_kwh * grid.pue * grid.intensity_g_per_kwh / 1000.0
