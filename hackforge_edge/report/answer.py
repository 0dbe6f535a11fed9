"""The report's first screen: the recommended target, mode and precision for the workload.

Options are the targets' recommended points (feasible, accuracy kept: ``Feasibility.summary``)
in the order of ``Feasibility.ranking`` (cost per million inferences) when costs were
computed, else by verdict then throughput. The local measurement (``this-machine``) is an
option only when it was costed (a price_override for it). Pure: reads nothing.
"""

from __future__ import annotations

from hackforge_edge.feasibility.artifact import Entry, Feasibility
from hackforge_edge.feasibility.checks import RANK
from hackforge_edge.feasibility.cost import cost_needs
from hackforge_edge.feasibility.points import MEASURED_PROFILE
from hackforge_edge.report.artifact import Answer, AnswerPoint
from hackforge_edge.report.inputs import ReportInputs

RUNNERS_UP = 3


def workload_text(feas: Feasibility) -> str:
    r = feas.requirements
    parts = []
    if r.items_per_day is not None:
        parts.append(f"{r.items_per_day:,.0f} inferences/day over {r.operating_hours_per_day:g} h/day")
    if r.max_latency_ms is not None:
        parts.append(f"{r.percentile} latency <= {r.max_latency_ms:g} ms")
    if r.min_throughput_per_s is not None:
        parts.append(f">= {r.min_throughput_per_s:g} items/s per device")
    if r.power_budget_w is not None:
        parts.append(f"<= {r.power_budget_w:g} W per device")
    parts.append(f"accuracy drop <= {r.max_accuracy_drop_pp:g} pp vs FP32")
    if r.tariff_per_kwh is not None and r.horizon_years is not None:
        parts.append(f"{r.horizon_years:g} years at {r.tariff_per_kwh:g} {r.currency}/kWh")
    return "; ".join(parts)


def _point(e: Entry, display: str | None) -> AnswerPoint:
    c = e.cost
    return AnswerPoint(
        profile=e.profile, display_name=display, mode=e.mode, precision=e.precision, batch=e.batch,
        verdict=e.verdict, devices=e.workload.devices_needed if e.workload else None,
        latency_ms=e.latency_ms.value if e.latency_ms else None, kind=e.kind,
        accuracy=e.accuracy.accuracy if e.accuracy else None,
        accuracy_drop_pp=e.accuracy.drop_pp if e.accuracy else None,
        cost_total=c.total if c else None, cost_per_million=c.cost_per_million_inferences if c else None,
        purchase=c.purchase if c else None, price_basis=c.price_basis if c else None,
        energy_kwh_per_year=e.energy_per_year_kwh.value if e.energy_per_year_kwh else None,
        co2_kg_per_year=e.co2_kg_per_year.value if e.co2_kg_per_year else None)


def _options(feas: Feasibility) -> tuple[list[Entry], str]:
    by_key = {(e.profile, e.mode, e.precision, e.engine): e for e in feas.entries}
    if feas.ranking:
        picked = [next(e for k, e in by_key.items() if k[:3] == (r.profile, r.mode, r.precision))
                  for r in feas.ranking]
        return picked, "cost per million inferences over the horizon (purchase + energy)"
    picked = []
    for name, s in feas.summary.items():
        r = s.recommended
        if r is not None and name != MEASURED_PROFILE:
            picked.append(by_key[(name, r.mode, r.precision, r.engine)])
    picked.sort(key=lambda e: (RANK[e.verdict], -(e.throughput_per_s or 0.0)))
    missing = cost_needs(feas.requirements)
    why = f" (no cost: requirements lack {', '.join(missing)})" if missing else ""
    return picked, "verdict, then throughput per device" + why


def build_answer(feas: Feasibility, inputs: ReportInputs) -> Answer:
    options, ranked_by = _options(feas)
    names = {n: p.display_name for n, p in inputs.profile.profiles.items()}
    points = [_point(e, names.get(e.profile)) for e in options]
    none_reason = None
    if not points:
        none_reason = ("no target meets the requirements at a precision that keeps the accuracy "
                       "(see the verdict table and its reasons below)")
    acc = None
    if inputs.quality is not None:
        acc = dict(inputs.quality.scalars).get("accuracy")
    carbon = inputs.carbon
    totals = carbon.totals if carbon is not None else {}
    return Answer(
        workload=workload_text(feas), ranked_by=ranked_by,
        recommended=points[0] if points else None, none_reason=none_reason,
        runners_up=points[1:1 + RUNNERS_UP], currency=feas.requirements.currency,
        horizon_years=feas.requirements.horizon_years, model_accuracy=acc,
        training_kwh=totals.get("energy_kwh"), training_co2_kg=totals.get("co2_kg"),
        training_kind=carbon.kind if carbon is not None else None)
