"""Cost of ownership of one feasibility entry over the requirements' horizon (pure).

    devices        = the workload's devices_needed (projected fleet size)
    purchase       = devices x price per device (price_override, else the profile's sourced price)
    energy kWh     = energy_per_year_kwh x horizon_years           (device energy, estimated)
    energy cost    = energy kWh x PUE x tariff_per_kwh              (facility energy at the meter)
    CO2 kg         = co2_kg_per_year x horizon_years                (PUE included there)
    total          = purchase + energy cost
    per million    = total / (items_per_day x days_per_year x horizon_years) x 1e6

Not counted: host servers a PCIe card needs, carrier boards, storage, cases, networking,
maintenance, staff, financing, resale value, embodied carbon. Each entry says so.
"""

from __future__ import annotations

from hackforge_edge.feasibility.artifact import Cost, Entry, GridInfo
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.requirements import Requirements
from hackforge_edge.profiling.hardware import HardwareProfile

EXCLUDED = ("host servers for PCIe cards, carrier boards, storage, cases, networking, maintenance, "
            "staff, financing, resale value, embodied carbon")
METHOD = ("purchase = devices x price; energy cost = kWh/yr x horizon x PUE x tariff; total = purchase "
          "+ energy cost; per million = total / (items_per_day x days_per_year x horizon) x 1e6")


def cost_needs(req: Requirements) -> list[str]:
    """The requirement fields a cost needs that are missing."""
    return [f for f in ("tariff_per_kwh", "horizon_years", "items_per_day") if getattr(req, f) is None]


def entry_cost(entry: Entry, hw: HardwareProfile | None, req: Requirements, grid: GridInfo | None,
               cfg: FeasibilityConfig) -> tuple[Cost | None, str | None]:
    """(cost, None) or (None, why no cost) for one entry."""
    missing = cost_needs(req)
    if missing:
        return None, "cost not computed: requirements lack " + ", ".join(missing)
    devices = entry.workload.devices_needed if entry.workload is not None else None
    kwh_year = entry.energy_per_year_kwh.value if entry.energy_per_year_kwh is not None else None
    if devices is None or kwh_year is None:
        return None, "cost not computed: no fleet size or yearly energy for this entry"
    override = (req.price_override or {}).get(entry.profile)
    if override is not None:
        price, currency = override, req.currency
        price_source = f"requirements price_override[{entry.profile}]"
        basis, date = "override", None
    elif hw is not None and hw.price is not None:
        p = hw.price
        price, currency, basis, date = p.value, p.currency, p.basis, p.date
        price_source = f"{p.item}: {p.source}".strip()
    else:
        return None, f"cost not computed: no price for {entry.profile} (set price_override)"
    if currency != req.currency:
        return None, (f"cost not computed: {entry.profile}'s price is in {currency}, the tariff in "
                      f"{req.currency} (set price_override in {req.currency})")
    years, pue = req.horizon_years, (grid.pue if grid is not None else 1.0)
    kwh = kwh_year * years
    energy_cost = kwh * pue * req.tariff_per_kwh
    purchase = devices * price
    total = purchase + energy_cost
    inferences = req.items_per_day * cfg.days_per_year * years
    co2 = entry.co2_kg_per_year.value * years if entry.co2_kg_per_year is not None else None
    return Cost(
        currency=req.currency, horizon_years=years, devices=devices, price_per_device=price,
        price_basis=basis, price_date=date, price_source=price_source, purchase=purchase,
        energy_kwh=kwh, pue=pue, tariff_per_kwh=req.tariff_per_kwh, energy_cost=energy_cost,
        co2_kg=co2, total=total, inferences=inferences,
        cost_per_million_inferences=total / inferences * 1e6, method=METHOD, excluded=EXCLUDED), None
