"""Fleet size, energy per day and year, and CO2 per year for one operating point and workload."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hackforge_edge.energy.meter import J_PER_KWH
from hackforge_edge.feasibility.artifact import Co2PerYear, EnergyPerDay, EnergyPerYear, GridInfo, Workload
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.points import OperatingPoint
from hackforge_edge.feasibility.requirements import Requirements

ENERGY_INCLUDED = (
    "active: items_per_day x energy per inference (device power over the busy time, idle floor "
    "included when the projection's method says so); idle: idle power x devices x the operating "
    "hours each device is not busy; excluded: hours outside operating hours (devices assumed off), "
    "host/network/cooling beyond PUE, embodied carbon")


@dataclass
class EnergyResult:
    """The workload-dependent part of a feasibility entry."""

    energy_kwh_per_1000_inferences: float | None
    workload: Workload | None = None
    energy_per_day_kwh: EnergyPerDay | None = None
    energy_per_year_kwh: EnergyPerYear | None = None
    co2_kg_per_year: Co2PerYear | None = None
    notes: list[str] = field(default_factory=list)


def workload_and_energy(point: OperatingPoint, req: Requirements, grid: GridInfo | None,
                        cfg: FeasibilityConfig) -> EnergyResult:
    """Devices needed, energy per day / year and CO2 per year for one point (pure)."""
    e = point.energy_per_inference_j
    out = EnergyResult(None if e.value is None else e.value * 1000 / J_PER_KWH)
    if req.items_per_day is None:
        out.notes.append("no workload given (items_per_day): devices, energy per day/year and CO2 "
                         "not computed")
        return out
    items, hours = req.items_per_day, req.operating_hours_per_day
    out.workload = _workload(point, items, hours, cfg)
    devices = out.workload.devices_needed
    busy_s = None if devices is None else items / devices / point.throughput_per_s

    active_j = None if e.value is None else items * e.value
    if point.idle_power_w is not None and devices is not None:
        idle_j = point.idle_power_w * devices * max(0.0, hours * 3600.0 - busy_s)
    else:
        idle_j = None
        out.notes.append("idle power over operating hours not included (no idle power known)")
    kwh_day = None if active_j is None else (active_j + (idle_j or 0.0)) / J_PER_KWH
    kwh_year = None if kwh_day is None else kwh_day * cfg.days_per_year
    band = None
    if e.low is not None and e.high is not None and active_j is not None:
        band = tuple((items * x + (idle_j or 0.0)) / J_PER_KWH * cfg.days_per_year for x in (e.low, e.high))
    out.energy_per_day_kwh = EnergyPerDay(
        value=kwh_day, active_kwh=None if active_j is None else active_j / J_PER_KWH,
        idle_kwh=None if idle_j is None else idle_j / J_PER_KWH,
        idle_power_w=point.idle_power_w, idle_power_source=point.idle_power_source,
        method="items_per_day x energy_per_inference + idle_power x devices x idle hours",
        included=ENERGY_INCLUDED)
    out.energy_per_year_kwh = EnergyPerYear(value=kwh_year, band=band, days_per_year=cfg.days_per_year,
                                            method="energy_per_day x days_per_year")
    if grid is None:
        out.notes.append("no grid intensity given: CO2 not computed")
    elif kwh_year is not None:
        f = grid.pue * grid.intensity_g_per_kwh / 1000.0
        out.co2_kg_per_year = Co2PerYear(
            value=kwh_year * f, band=None if band is None else (band[0] * f, band[1] * f),
            intensity_g_per_kwh=grid.intensity_g_per_kwh, pue=grid.pue, region=grid.region,
            basis=grid.basis, year=grid.year, source=grid.source,
            method="energy_per_year_kwh x pue x intensity_g_per_kwh / 1000")
    return out


def _workload(point: OperatingPoint, items: float, hours: float, cfg: FeasibilityConfig) -> Workload:
    t, tlo, _ = point.throughput_band()
    rate = items / (hours * 3600.0)
    u = cfg.utilisation_target
    devices = devices_hi = busy = None
    if t:
        devices = max(1, math.ceil(rate / (t * u) - 1e-9))
        devices_hi = max(1, math.ceil(rate / (tlo * u) - 1e-9)) if tlo else None
        busy = items / devices / t / (hours * 3600.0)
    return Workload(items_per_day=items, operating_hours_per_day=hours, required_rate_per_s=rate,
                    utilisation_target=u, throughput_per_device_per_s=t,
                    method="ceil(items_per_day / (hours x 3600) / (throughput x utilisation_target))",
                    devices_needed=devices, devices_needed_band_high=devices_hi, busy_fraction=busy)
