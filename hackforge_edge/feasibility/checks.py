"""The four checks of an operating point against a requirement (L = limit, m = margin).

* latency at percentile p: a projection gives a central value v and an error band [lo, hi] (the
  calibration residual, not a latency distribution). Tails are taken towards the band's high
  end: the decisive latency is ``d = v + f_p * (hi - v)`` with ``f_p`` from
  ``config.percentile_band_position``. FAIL if v > L; PASS if hi <= L and d <= L * (1 - m);
  otherwise MARGINAL (band straddles L, or within m).
* throughput per device t (band from the latency band): FAIL if t < T; PASS if the band's low
  end >= T and t >= T * (1 + m); otherwise MARGINAL.
* memory: FAIL if required > capacity; MARGINAL if it fits but eats into the headroom
  (required > capacity * (1 - headroom)); PASS otherwise.
* power: FAIL if power > budget; PASS if power <= budget * (1 - m); otherwise MARGINAL.
* a required check whose number the point lacks is MARGINAL ("cannot confirm").
"""

from __future__ import annotations

from typing import Iterable

from hackforge_edge.feasibility.artifact import (
    Checks,
    LatencyCheck,
    MemoryCheck,
    PowerCheck,
    ThroughputCheck,
    Verdict,
)
from hackforge_edge.feasibility.config import FeasibilityConfig
from hackforge_edge.feasibility.points import OperatingPoint
from hackforge_edge.feasibility.requirements import Requirements

PASS, MARGINAL, FAIL = "PASS", "MARGINAL", "FAIL"
RANK = {PASS: 0, MARGINAL: 1, FAIL: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    out: Verdict = PASS
    for v in verdicts:
        if RANK[v] > RANK[out]:
            out = v
    return out


def fmt(x: float | None, unit: str = "", nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        s = "0"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    else:
        s = f"{x:.{nd}g}"
    return f"{s} {unit}".rstrip()


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "n/a"
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(b) >= div:
            return f"{b / div:.3g} {unit}"
    return f"{b:.0f} B"


def check_all(point: OperatingPoint, req: Requirements, cfg: FeasibilityConfig) -> Checks:
    """The checks ``req`` asks for (memory always)."""
    return Checks(
        latency=(check_latency(point, req.max_latency_ms, req.percentile, cfg)
                 if req.max_latency_ms is not None else None),
        throughput=(check_throughput(point, req.min_throughput_per_s, cfg)
                    if req.min_throughput_per_s is not None else None),
        memory=check_memory(point, req.memory_headroom),
        power=check_power(point, req.power_budget_w, cfg) if req.power_budget_w is not None else None,
    )


def check_latency(point: OperatingPoint, limit_ms: float, percentile: str,
                  cfg: FeasibilityConfig) -> LatencyCheck:
    pos = cfg.percentile_band_position.get(percentile, 1.0)
    lat = point.latency_ms
    kind = point.kind
    if lat is None:
        return LatencyCheck(
            percentile=percentile, limit_ms=limit_ms, value_ms=None, low_ms=None, high_ms=None,
            band_position=pos, decisive_ms=None, kind=kind, verdict=MARGINAL,
            reason=f"{percentile} latency: no {kind} value vs limit {fmt(limit_ms, 'ms')}: "
                   "cannot confirm => MARGINAL")
    v, lo, hi = lat.value, lat.low, lat.high
    d = v + pos * (hi - v)
    m = cfg.marginal_margin
    if lo == hi == v:
        head = f"{percentile} latency: {kind} {fmt(v, 'ms')} vs limit {fmt(limit_ms, 'ms')}"
    else:
        head = (f"{percentile} latency: {kind} {fmt(v, 'ms')} (band {fmt(lo)}-{fmt(hi, 'ms')}), "
                f"{percentile} taken as {fmt(d, 'ms')} vs limit {fmt(limit_ms, 'ms')}")
    if v > limit_ms:
        verdict, why = FAIL, ("measured value exceeds limit" if kind == "measured"
                              else "central projection exceeds limit")
    elif hi <= limit_ms and d <= limit_ms * (1 - m):
        verdict, why = PASS, f"band below limit with >= {m:.0%} margin"
    elif hi > limit_ms:
        verdict, why = MARGINAL, "band straddles limit"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of limit"
    return LatencyCheck(percentile=percentile, limit_ms=limit_ms, value_ms=v, low_ms=lo, high_ms=hi,
                        band_position=pos, decisive_ms=d, kind=kind, verdict=verdict,
                        reason=f"{head}: {why} => {verdict}")


def check_throughput(point: OperatingPoint, min_per_s: float, cfg: FeasibilityConfig) -> ThroughputCheck:
    t, tlo, thi = point.throughput_band()
    kind = point.kind
    fields = dict(min_per_s=min_per_s, value_per_s=t, low_per_s=tlo, high_per_s=thi, kind=kind)
    if t is None:
        return ThroughputCheck(**fields, verdict=MARGINAL,
                               reason=f"throughput: no {kind} value vs minimum {fmt(min_per_s, '/s')}: "
                                      "cannot confirm => MARGINAL")
    m = cfg.marginal_margin
    band = "" if tlo == thi == t else f" (band {fmt(tlo)}-{fmt(thi, '/s')})"
    head = f"throughput: {kind} {fmt(t, '/s')}{band} vs minimum {fmt(min_per_s, '/s')}"
    if t < min_per_s:
        verdict, why = FAIL, ("measured value below minimum" if kind == "measured"
                              else "central projection below minimum")
    elif tlo >= min_per_s and t >= min_per_s * (1 + m):
        verdict, why = PASS, f"band above minimum with >= {m:.0%} margin"
    elif tlo < min_per_s:
        verdict, why = MARGINAL, "band straddles minimum"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of minimum"
    return ThroughputCheck(**fields, verdict=verdict, reason=f"{head}: {why} => {verdict}")


def check_memory(point: OperatingPoint, headroom: float) -> MemoryCheck:
    req, cap = point.memory_required_bytes, point.memory_capacity_bytes
    usable = None if cap is None else cap * (1 - headroom)
    fields = dict(required_bytes=req, capacity_bytes=cap, headroom=headroom, usable_bytes=usable,
                  kind=point.kind)
    if req is None or cap is None:
        return MemoryCheck(**fields, verdict=MARGINAL,
                           reason=f"memory: required {fmt_bytes(req)} vs capacity {fmt_bytes(cap)}: "
                                  "cannot confirm => MARGINAL")
    head = (f"memory: required {fmt_bytes(req)} vs capacity {fmt_bytes(cap)} "
            f"(usable {fmt_bytes(usable)} with {headroom:.0%} headroom)")
    if req > cap:
        verdict, why = FAIL, "does not fit"
    elif req > usable:
        verdict, why = MARGINAL, "fits but eats into the headroom"
    else:
        verdict, why = PASS, f"fits, {req / cap:.1%} of capacity"
    return MemoryCheck(**fields, verdict=verdict, reason=f"{head}: {why} => {verdict}")


def check_power(point: OperatingPoint, budget_w: float, cfg: FeasibilityConfig) -> PowerCheck:
    pw = point.power_w
    p = pw.value if pw is not None else None
    kind = pw.kind if pw is not None else "estimated"
    if p is None:
        return PowerCheck(budget_w=budget_w, power_w=None, kind=kind, verdict=MARGINAL,
                          reason=f"power: no estimate vs budget {fmt(budget_w, 'W')}: cannot confirm => MARGINAL")
    m = cfg.marginal_margin
    head = f"power: {fmt(p, 'W')} under load vs budget {fmt(budget_w, 'W')}"
    if p > budget_w:
        verdict, why = FAIL, "over budget"
    elif p <= budget_w * (1 - m):
        verdict, why = PASS, f"under budget with >= {m:.0%} margin"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of budget"
    return PowerCheck(budget_w=budget_w, power_w=p, kind=kind, verdict=verdict,
                      reason=f"{head}: {why} => {verdict}")
