"""The feasibility verdict: a pure function of a profile, the requirements and a grid.

``evaluate(profile, requirements, grid, config)`` judges every operating point of a
:class:`~hackforge_edge.profiling.artifact.Profile` (its projections, and its local measurement
as the profile ``this-machine``) and returns a :class:`~hackforge_edge.feasibility.artifact.
Feasibility`: for every (profile, mode, engine, precision) a verdict PASS / MARGINAL / FAIL with
the reasons written out in numbers, the devices the workload needs, the energy per inference,
per day and per year, and the CO2 per year at the stated grid intensity.

It reads nothing from disk or the clock and calls no meter: the same inputs give the same
output. The checks are in :mod:`~hackforge_edge.feasibility.checks` (rules in its docstring),
the energy in :mod:`~hackforge_edge.feasibility.energy`; every threshold lives in
:class:`FeasibilityConfig` and is echoed in the output under ``config``. The entry's verdict is
the worst of its checks. Among batch sizes the best verdict wins, ties broken by the higher
throughput, or the smallest batch when all FAIL (batch latency counts as request latency; the
wait to fill a batch is not included).
"""

from __future__ import annotations

from typing import Union

from hackforge_edge.energy.carbon import GridSpec
from hackforge_edge.feasibility.artifact import (
    BatchVerdict,
    BestPoint,
    Checks,
    Entry,
    Feasibility,
    GridInfo,
    ProfileSummary,
    RankedTarget,
    Recommended,
)
from hackforge_edge.feasibility.checks import FAIL, MARGINAL, PASS, RANK, check_all, worst
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.cost import entry_cost
from hackforge_edge.feasibility.energy import ENERGY_INCLUDED, workload_and_energy
from hackforge_edge.feasibility.points import MEASURED_PROFILE, OperatingPoint, operating_points
from hackforge_edge.feasibility.requirements import Requirements
from hackforge_edge.profiling.artifact import Profile

__all__ = ["PASS", "MARGINAL", "FAIL", "MEASURED_PROFILE", "FeasibilityConfig", "evaluate", "RULES"]

RULES = {
    "latency": "decisive = value + band_position[percentile] x (high - value); FAIL if value > limit; "
               "PASS if high <= limit and decisive <= limit x (1 - marginal_margin); else MARGINAL",
    "throughput": "FAIL if value < min; PASS if band low >= min and value >= min x (1 + marginal_margin); "
                  "else MARGINAL",
    "memory": "FAIL if required > capacity; MARGINAL if required > capacity x (1 - memory_headroom); else PASS",
    "power": "FAIL if power > budget; PASS if power <= budget x (1 - marginal_margin); else MARGINAL",
    "missing": "a required check without a number is MARGINAL (cannot confirm)",
    "measured": "profile 'this-machine' is the local measurement: latency = the measured percentile "
                "(no band), memory = max(RSS growth from session creation + timed runs, static weights "
                "+ peak activations) vs this machine's memory",
    "overall": "worst check; per group the batch with the best verdict, then highest throughput "
               "(when every batch FAILs, the smallest batch)",
    "energy_included": ENERGY_INCLUDED,
    "precision": "a precision is recommendable when its entry is PASS or MARGINAL and its top-1 accuracy "
                 "drop vs FP32 on target data (export_validation.json variants) is known and <= "
                 "requirements.max_accuracy_drop_pp; fp32 is the reference. Per target the recommended "
                 "point is the best verdict, then the lowest cost per million inferences (when costed), "
                 "then the highest throughput per device",
    "cost": "devices x price + kWh over the horizon x PUE x tariff; per million inferences = total / "
            "(items_per_day x days_per_year x horizon_years) x 1e6; targets ranked by it (feasibility/cost.py)",
}
RECOMMEND_RULE = ("feasible, accuracy kept; best verdict, then lowest cost per million inferences, "
                  "then highest throughput per device")

Grid = Union[GridSpec, GridInfo, None]


def evaluate(profile: Profile, requirements: Requirements, grid: Grid = None,
             config: FeasibilityConfig | None = None) -> Feasibility:
    """Verdict per (profile, mode, engine, precision); pure: no I/O, no clock."""
    cfg = config or FeasibilityConfig()
    grid_info = _grid_info(grid)
    groups: dict[tuple, list[OperatingPoint]] = {}
    for point in operating_points(profile, requirements.percentile):
        groups.setdefault(point.group, []).append(point)
    entries = [_annotate(_judge_group(points, requirements, grid_info, cfg), profile, requirements,
                         grid_info, cfg) for points in groups.values()]
    summary = _summary(entries, requirements)
    return Feasibility(
        model=profile.model, requirements=requirements, config=cfg, grid=grid_info, rules=dict(RULES),
        entries=entries, summary=summary, ranking=_ranking(summary, entries),
        counts={v: sum(e.verdict == v for e in entries) for v in (PASS, MARGINAL, FAIL)})


def _grid_info(grid: Grid) -> GridInfo | None:
    if grid is None or isinstance(grid, GridInfo):
        return grid
    return GridInfo.model_validate(grid.to_dict())


def _judge_group(points: list[OperatingPoint], req: Requirements, grid: GridInfo | None,
                 cfg: FeasibilityConfig) -> Entry:
    """The entry of one (profile, mode, engine, precision): its best batch, judged."""
    judged = []
    for p in sorted(points, key=lambda p: p.batch):
        checks = check_all(p, req, cfg)
        judged.append((p, checks, worst(c.verdict for c in checks.present())))
    point, checks, verdict = min(judged, key=_rank)
    reasons = [c.reason for c in checks.present()]
    if len(judged) > 1:
        reasons.append(f"batch {point.batch} chosen of {[p.batch for p, _, _ in judged]} "
                       + ("(all FAIL: the smallest batch is shown)" if verdict == FAIL
                          else "(best verdict, then highest throughput)"))
    return _entry(point, checks, verdict, reasons, judged, workload_and_energy(point, req, grid, cfg))


def _rank(item: tuple[OperatingPoint, Checks, str]) -> tuple:
    point, _, verdict = item
    # PASS/MARGINAL: the most throughput; all FAIL: the least demanding point (smallest batch)
    second = point.batch if verdict == FAIL else -(point.throughput_per_s or 0.0)
    return (RANK[verdict], second)


def _entry(point: OperatingPoint, checks: Checks, verdict, reasons: list[str], judged, energy) -> Entry:
    return Entry(
        profile=point.profile, mode=point.mode, engine=point.engine, precision=point.precision,
        batch=point.batch, verdict=verdict, reasons=reasons, checks=checks, kind=point.kind,
        method=point.method, latency_definition=point.latency_definition, latency_ms=point.latency_ms,
        throughput_per_s=point.throughput_per_s, memory_required_bytes=point.memory_required_bytes,
        memory_capacity_bytes=point.memory_capacity_bytes, memory_method=point.memory_method,
        power_w=point.power_w, calibration=point.calibration,
        energy_per_inference_j=point.energy_per_inference_j,
        energy_kwh_per_1000_inferences=energy.energy_kwh_per_1000_inferences,
        workload=energy.workload, energy_per_day_kwh=energy.energy_per_day_kwh,
        energy_per_year_kwh=energy.energy_per_year_kwh, co2_kg_per_year=energy.co2_kg_per_year,
        notes=energy.notes,
        batches=[BatchVerdict(batch=p.batch, verdict=v,
                              latency_ms=p.latency_ms.value if p.latency_ms is not None else None,
                              throughput_per_s=p.throughput_per_s) for p, _, v in judged])


def _annotate(entry: Entry, profile: Profile, req: Requirements, grid: GridInfo | None,
              cfg: FeasibilityConfig) -> Entry:
    """The entry with its precision's accuracy, whether it may be recommended, and its cost."""
    acc = profile.accuracy.get(entry.precision)
    limit = req.max_accuracy_drop_pp
    if entry.verdict == FAIL:
        ok, note = False, "not feasible"
    elif entry.precision == "fp32":
        ok, note = True, "fp32: the reference precision"
    elif acc is None or acc.drop_pp is None:
        ok, note = False, (f"{entry.precision} accuracy not checked on target data (no "
                           f"model.{entry.precision}.onnx variant judged in export_validation.json)")
    elif acc.drop_pp > limit:
        ok, note = False, (f"{entry.precision} loses {acc.drop_pp:.2f} pp top-1 on target data, "
                           f"more than the {limit:g} pp allowed")
    else:
        ok, note = True, f"{entry.precision} loses {acc.drop_pp:.2f} pp top-1 (<= {limit:g} pp allowed)"
    hw = profile.profiles.get("local" if entry.profile == MEASURED_PROFILE else entry.profile)
    if entry.profile == MEASURED_PROFILE and not (req.price_override or {}).get(MEASURED_PROFILE):
        hw = None                      # this machine's price is only ever the user's
    cost, cost_note = (None, "not feasible: no cost") if entry.verdict == FAIL else \
        entry_cost(entry, hw, req, grid, cfg)
    return entry.model_copy(update={"accuracy": acc, "recommendable": ok, "recommendation_note": note,
                                    "cost": cost, "cost_note": cost_note})


def _summary(entries: list[Entry], req: Requirements) -> dict[str, ProfileSummary]:
    """Per profile, its best entry (entries in order; the first of equal verdicts wins) and
    the recommended one (see RULES["precision"])."""
    out: dict[str, ProfileSummary] = {}
    for e in entries:
        s = out.get(e.profile)
        if s is None or RANK[e.verdict] < RANK[s.best_verdict]:
            out[e.profile] = ProfileSummary(best_verdict=e.verdict, best=BestPoint(
                mode=e.mode, engine=e.engine, precision=e.precision, batch=e.batch))
    for name, s in out.items():
        ok = [e for e in entries if e.profile == name and e.recommendable]
        if ok:
            e = min(ok, key=lambda e: (RANK[e.verdict], _per_million(e), -(e.throughput_per_s or 0.0)))
            s.recommended = Recommended(
                mode=e.mode, engine=e.engine, precision=e.precision, batch=e.batch, verdict=e.verdict,
                throughput_per_s=e.throughput_per_s,
                accuracy=e.accuracy.accuracy if e.accuracy else None,
                accuracy_drop_pp=e.accuracy.drop_pp if e.accuracy else None, rule=RECOMMEND_RULE)
    return out


def _per_million(e: Entry) -> float:
    return e.cost.cost_per_million_inferences if e.cost is not None else float("inf")


def _ranking(summary: dict[str, ProfileSummary], entries: list[Entry]) -> list[RankedTarget]:
    """Each target's recommended point that has a cost, cheapest per million inferences first."""
    picked = []
    for name, s in summary.items():
        r = s.recommended
        if r is None:
            continue
        e = next(e for e in entries if (e.profile, e.mode, e.precision, e.engine) ==
                 (name, r.mode, r.precision, r.engine))
        if e.cost is not None:
            picked.append(e)
    picked.sort(key=lambda e: (e.cost.cost_per_million_inferences, RANK[e.verdict]))
    return [RankedTarget(rank=i + 1, profile=e.profile, mode=e.mode, precision=e.precision, batch=e.batch,
                         verdict=e.verdict, devices=e.cost.devices,
                         cost_per_million_inferences=e.cost.cost_per_million_inferences,
                         total=e.cost.total, currency=e.cost.currency) for i, e in enumerate(picked)]
