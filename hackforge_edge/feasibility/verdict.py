"""The feasibility verdict: a pure function of a profile, the requirements and a grid.

``evaluate(profile_json, requirements, grid)`` reads the per-profile projections of a
``profile.json`` (see :mod:`hackforge_edge.profiling`) and returns the content of
``feasibility.json``: for every (profile, mode, engine, precision) a verdict PASS / MARGINAL /
FAIL with the reasons written out in numbers, the devices the workload needs, the energy per
inference, per day and per year, and the CO2 per year at the stated grid intensity.

It reads nothing from disk or the clock and calls no meter: the same inputs give the same
output. Every threshold it uses lives in :class:`FeasibilityConfig` and is echoed in the
output under ``config``.

Rules (L = limit, m = ``config.marginal_margin``):

* latency at percentile p: a projection gives a central value v and an error band [lo, hi]
  (the calibration residual, not a latency distribution). Tails are taken towards the band's
  high end: the decisive latency is ``d = v + f_p * (hi - v)`` with ``f_p`` from
  ``config.percentile_band_position`` (p50 -> v, p95 -> halfway to hi, p99 -> hi).
  FAIL if v > L (the central projection already misses; a tail cannot be faster);
  PASS if hi <= L and d <= L * (1 - m); otherwise MARGINAL (band straddles L, or within m).
* throughput per device t (band from the latency band): FAIL if t < T; PASS if the band's low
  end >= T and t >= T * (1 + m); otherwise MARGINAL.
* memory: FAIL if required > capacity; MARGINAL if it fits but eats into the headroom
  (required > capacity * (1 - headroom)); PASS otherwise.
* power: FAIL if power > budget; PASS if power <= budget * (1 - m); otherwise MARGINAL.
* the local measurement (profile.json ``local``) is judged too, as profile "this-machine",
  kind "measured": its latency is the measured percentile itself (no band), its memory the
  RSS growth from session creation and timed runs against this machine's memory.
* a required check whose number the projection lacks is MARGINAL ("cannot confirm").
  The entry's verdict is the worst of its checks. Among batch sizes the best verdict wins,
  ties broken by the higher throughput, or the smallest batch when all FAIL (batch latency counts
  as request latency; the wait to fill a batch is not included).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

PASS, MARGINAL, FAIL = "PASS", "MARGINAL", "FAIL"
_RANK = {PASS: 0, MARGINAL: 1, FAIL: 2}
SCHEMA_VERSION = 1
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class FeasibilityConfig:
    """Every threshold of the verdict, in one place (echoed in feasibility.json)."""

    marginal_margin: float = 0.10
    """Fraction of a limit inside which a pass is only MARGINAL (latency, throughput, power)."""
    percentile_band_position: dict[str, float] = field(
        default_factory=lambda: {"p50": 0.0, "p95": 0.5, "p99": 1.0})
    """Where in [central value, band high end] a latency percentile is taken (0 = value, 1 = high)."""
    utilisation_target: float = 0.7
    """Planned busy fraction of each device when sizing the fleet for the workload."""
    days_per_year: float = 365.0
    """Operating days per year for per-year energy and CO2."""

    def __post_init__(self) -> None:
        if not 0 <= self.marginal_margin < 1:
            raise ValueError("marginal_margin must be in [0, 1)")
        if not 0 < self.utilisation_target <= 1:
            raise ValueError("utilisation_target must be in (0, 1]")
        if self.days_per_year <= 0:
            raise ValueError("days_per_year must be > 0")
        for p, f in self.percentile_band_position.items():
            if not 0 <= f <= 1:
                raise ValueError(f"percentile_band_position[{p}] must be in [0, 1]")


ENERGY_INCLUDED = (
    "active: items_per_day x energy per inference (device power over the busy time, idle floor "
    "included when the projection's method says so); idle: idle power x devices x the operating "
    "hours each device is not busy; excluded: hours outside operating hours (devices assumed off), "
    "host/network/cooling beyond PUE, embodied carbon")


# ---------------------------------------------------------------------------------------------
# small readers: projections may carry a number or a {value, low, high, kind, method} dict


def value_of(x: Any) -> float | None:
    """A finite float from a number or a {value, ...} dict; None for missing, bool or non-finite."""
    if isinstance(x, Mapping):
        x = x.get("value")
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _band(x: Any) -> tuple[float | None, float | None, float | None]:
    """(value, low, high); a missing band collapses onto the value."""
    v = value_of(x)
    if not isinstance(x, Mapping):
        return v, v, v
    lo, hi = value_of(x.get("low")), value_of(x.get("high"))
    lo = v if lo is None else lo
    hi = v if hi is None else hi
    return v, lo, hi


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _fmt(x: float | None, unit: str = "", nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        s = "0"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    else:
        s = f"{x:.{nd}g}"
    return f"{s} {unit}".rstrip()


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "n/a"
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(b) >= div:
            return f"{b / div:.3g} {unit}"
    return f"{b:.0f} B"


def _worst(verdicts: Iterable[str]) -> str:
    out = PASS
    for v in verdicts:
        if _RANK[v] > _RANK[out]:
            out = v
    return out


# ---------------------------------------------------------------------------------------------
# the checks


def check_latency(proj: Mapping, limit_ms: float, percentile: str, cfg: FeasibilityConfig) -> dict:
    v, lo, hi = _band(proj.get("latency_ms"))
    pos = cfg.percentile_band_position.get(percentile, 1.0)
    out: dict[str, Any] = {"percentile": percentile, "limit_ms": limit_ms, "value_ms": v,
                           "low_ms": lo, "high_ms": hi, "band_position": pos, "kind": "projected"}
    if v is None:
        out.update(verdict=MARGINAL, decisive_ms=None,
                   reason=f"{percentile} latency: no projection vs limit {_fmt(limit_ms, 'ms')}: cannot confirm => MARGINAL")
        return out
    d = v + pos * (hi - v)
    m = cfg.marginal_margin
    kind = proj.get("kind", "projected")
    out["kind"] = kind
    if lo == hi == v:
        head = f"{percentile} latency: {kind} {_fmt(v, 'ms')} vs limit {_fmt(limit_ms, 'ms')}"
    else:
        head = (f"{percentile} latency: {kind} {_fmt(v, 'ms')} (band {_fmt(lo)}-{_fmt(hi, 'ms')}), "
                f"{percentile} taken as {_fmt(d, 'ms')} vs limit {_fmt(limit_ms, 'ms')}")
    if v > limit_ms:
        verdict, why = FAIL, ("measured value exceeds limit" if kind == "measured"
                              else "central projection exceeds limit")
    elif hi <= limit_ms and d <= limit_ms * (1 - m):
        verdict, why = PASS, f"band below limit with >= {m:.0%} margin"
    elif hi > limit_ms:
        verdict, why = MARGINAL, "band straddles limit"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of limit"
    out.update(verdict=verdict, decisive_ms=d, reason=f"{head}: {why} => {verdict}")
    return out


def _throughput_band(proj: Mapping) -> tuple[float | None, float | None, float | None]:
    t = value_of(proj.get("throughput_per_s"))
    tv, tlo, thi = _band(proj.get("throughput_per_s"))
    if isinstance(proj.get("throughput_per_s"), Mapping) and tlo != tv:
        return tv, tlo, thi
    # derive the band from the latency band: throughput ~ 1 / latency at fixed batch
    v, lo, hi = _band(proj.get("latency_ms"))
    if t is None or not v or not hi or not lo:
        return t, t, t
    return t, t * v / hi, t * v / lo


def check_throughput(proj: Mapping, min_per_s: float, cfg: FeasibilityConfig) -> dict:
    t, tlo, thi = _throughput_band(proj)
    out: dict[str, Any] = {"min_per_s": min_per_s, "value_per_s": t, "low_per_s": tlo,
                           "high_per_s": thi, "kind": "projected"}
    if t is None:
        out.update(verdict=MARGINAL, reason=f"throughput: no projection vs minimum {_fmt(min_per_s, '/s')}: cannot confirm => MARGINAL")
        return out
    m = cfg.marginal_margin
    kind = proj.get("kind", "projected")
    out["kind"] = kind
    band = "" if tlo == thi == t else f" (band {_fmt(tlo)}-{_fmt(thi, '/s')})"
    head = f"throughput: {kind} {_fmt(t, '/s')}{band} vs minimum {_fmt(min_per_s, '/s')}"
    if t < min_per_s:
        verdict, why = FAIL, ("measured value below minimum" if kind == "measured"
                              else "central projection below minimum")
    elif tlo >= min_per_s and t >= min_per_s * (1 + m):
        verdict, why = PASS, f"band above minimum with >= {m:.0%} margin"
    elif tlo < min_per_s:
        verdict, why = MARGINAL, "band straddles minimum"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of minimum"
    out.update(verdict=verdict, reason=f"{head}: {why} => {verdict}")
    return out


def check_memory(proj: Mapping, headroom: float) -> dict:
    req = value_of(proj.get("memory_required_bytes"))
    cap = value_of(proj.get("memory_capacity_bytes"))
    out: dict[str, Any] = {"required_bytes": req, "capacity_bytes": cap, "headroom": headroom,
                           "usable_bytes": None if cap is None else cap * (1 - headroom),
                           "kind": proj.get("kind", "projected")}
    if req is None or cap is None:
        out.update(verdict=MARGINAL, reason=f"memory: required {_fmt_bytes(req)} vs capacity {_fmt_bytes(cap)}: cannot confirm => MARGINAL")
        return out
    usable = cap * (1 - headroom)
    head = (f"memory: required {_fmt_bytes(req)} vs capacity {_fmt_bytes(cap)} "
            f"(usable {_fmt_bytes(usable)} with {headroom:.0%} headroom)")
    if req > cap:
        verdict, why = FAIL, "does not fit"
    elif req > usable:
        verdict, why = MARGINAL, "fits but eats into the headroom"
    else:
        verdict, why = PASS, f"fits, {req / cap:.1%} of capacity"
    out.update(verdict=verdict, reason=f"{head}: {why} => {verdict}")
    return out


def check_power(proj: Mapping, budget_w: float, cfg: FeasibilityConfig) -> dict:
    p = value_of(proj.get("power_w"))
    pw = proj.get("power_w")
    out: dict[str, Any] = {"budget_w": budget_w, "power_w": p,
                           "kind": _get(pw, "kind", "estimated") if isinstance(pw, Mapping) else "estimated"}
    if p is None:
        out.update(verdict=MARGINAL, reason=f"power: no projection vs budget {_fmt(budget_w, 'W')}: cannot confirm => MARGINAL")
        return out
    m = cfg.marginal_margin
    head = f"power: {_fmt(p, 'W')} under load vs budget {_fmt(budget_w, 'W')}"
    if p > budget_w:
        verdict, why = FAIL, "over budget"
    elif p <= budget_w * (1 - m):
        verdict, why = PASS, f"under budget with >= {m:.0%} margin"
    else:
        verdict, why = MARGINAL, f"within {m:.0%} of budget"
    out.update(verdict=verdict, reason=f"{head}: {why} => {verdict}")
    return out


# ---------------------------------------------------------------------------------------------
# workload, energy and CO2


def _energy_per_inference(proj: Mapping) -> dict:
    e = proj.get("energy_per_inference_j")
    v, lo, hi = _band(e)
    if v is not None:
        return {"value": v, "low": lo, "high": hi,
                "kind": _get(e, "kind", "estimated") if isinstance(e, Mapping) else "estimated",
                "method": _get(e, "method") if isinstance(e, Mapping) else None}
    # fallback: power under load x latency per item
    p, lat, batch = value_of(proj.get("power_w")), value_of(proj.get("latency_ms")), value_of(proj.get("batch")) or 1
    if p is None or lat is None:
        return {"value": None, "low": None, "high": None, "kind": None,
                "method": "not available (projection has neither energy nor power x latency)"}
    val = p * lat / 1000.0 / batch
    return {"value": val, "low": val, "high": val, "kind": "estimated",
            "method": "power_w x latency / batch (feasibility fallback; no band)"}


def _method_of(x: Any) -> str | None:
    return x.get("method") if isinstance(x, Mapping) else None


def _idle_power_w(proj: Mapping, profiles: Mapping | None = None) -> tuple[float | None, str | None]:
    """Idle power of the device in the projection's mode: from the projection, else from the
    hardware profile profile.json carries (``profiles[name].power_modes[].idle_w``)."""
    for key in ("idle_power_w", "power_idle_w", "idle_w"):
        if value_of(proj.get(key)) is not None:
            return value_of(proj.get(key)), _method_of(proj.get(key)) or f"projection.{key}"
    for parent in ("power", "power_w", "energy_per_inference_j"):
        sub = proj.get(parent)
        if isinstance(sub, Mapping):
            for key in ("idle_power_w", "idle_w"):
                if value_of(sub.get(key)) is not None:
                    return value_of(sub.get(key)), f"projection.{parent}.{key}"
            inputs = sub.get("inputs")
            if isinstance(inputs, Mapping):
                for key in ("idle_power_w", "idle_w"):
                    if value_of(inputs.get(key)) is not None:
                        return value_of(inputs.get(key)), f"projection.{parent}.inputs.{key}"
    hw = (profiles or {}).get(proj.get("profile"))
    if isinstance(hw, Mapping):
        for pm in hw.get("power_modes") or []:
            if pm.get("name") == proj.get("mode") and value_of(pm.get("idle_w")) is not None:
                return value_of(pm["idle_w"]), f"profile {proj.get('profile')} power mode {pm['name']} idle_w (estimated)"
    return None, None


def workload_and_energy(proj: Mapping, req: Any, grid: Any, cfg: FeasibilityConfig,
                        profiles: Mapping | None = None) -> dict:
    """Devices needed, energy per inference / day / year and CO2 per year for one projection."""
    e = _energy_per_inference(proj)
    out: dict[str, Any] = {"energy_per_inference_j": e}
    ev = e["value"]
    out["energy_kwh_per_1000_inferences"] = None if ev is None else ev * 1000 / J_PER_KWH

    items = _get(req, "items_per_day")
    hours = _get(req, "operating_hours_per_day", 24.0)
    if items is None:
        out["workload"] = None
        out["energy_per_day_kwh"] = out["energy_per_year_kwh"] = None
        out["co2_kg_per_year"] = None
        out["notes"] = ["no workload given (items_per_day): devices, energy per day/year and CO2 not computed"]
        return out

    t, tlo, _ = _throughput_band(proj)
    rate = items / (hours * 3600.0)
    u = cfg.utilisation_target
    wl: dict[str, Any] = {"items_per_day": items, "operating_hours_per_day": hours,
                          "required_rate_per_s": rate, "utilisation_target": u,
                          "throughput_per_device_per_s": t, "kind": "projected",
                          "method": "ceil(items_per_day / (hours x 3600) / (throughput x utilisation_target))"}
    if t:
        devices = max(1, math.ceil(rate / (t * u) - 1e-9))
        devices_hi = max(1, math.ceil(rate / (tlo * u) - 1e-9)) if tlo else None
        busy_s = items / devices / t
        wl.update(devices_needed=devices, devices_needed_band_high=devices_hi,
                  busy_fraction=busy_s / (hours * 3600.0))
    else:
        devices, busy_s = None, None
        wl.update(devices_needed=None, devices_needed_band_high=None, busy_fraction=None)
    out["workload"] = wl

    notes: list[str] = []
    active_j = None if ev is None else items * ev
    idle_w, idle_src = _idle_power_w(proj, profiles)
    if idle_w is not None and devices is not None:
        idle_s_per_device = max(0.0, hours * 3600.0 - busy_s)
        idle_j = idle_w * devices * idle_s_per_device
    else:
        idle_j = None
        notes.append("idle power over operating hours not included (projection gives no idle power)")
    per_day_j = None if active_j is None else active_j + (idle_j or 0.0)
    kwh_day = None if per_day_j is None else per_day_j / J_PER_KWH
    kwh_year = None if kwh_day is None else kwh_day * cfg.days_per_year
    band = None
    if e["low"] is not None and e["high"] is not None and active_j is not None:
        band = [(items * e["low"] + (idle_j or 0.0)) / J_PER_KWH * cfg.days_per_year,
                (items * e["high"] + (idle_j or 0.0)) / J_PER_KWH * cfg.days_per_year]
    out["energy_per_day_kwh"] = {
        "value": kwh_day,
        "active_kwh": None if active_j is None else active_j / J_PER_KWH,
        "idle_kwh": None if idle_j is None else idle_j / J_PER_KWH,
        "idle_power_w": idle_w, "idle_power_source": idle_src,
        "kind": "estimated", "method": "items_per_day x energy_per_inference + idle_power x devices x idle hours",
        "included": ENERGY_INCLUDED,
    }
    out["energy_per_year_kwh"] = {"value": kwh_year, "band": band, "days_per_year": cfg.days_per_year,
                                  "kind": "estimated", "method": "energy_per_day x days_per_year"}

    intensity = value_of(_get(grid, "intensity_g_per_kwh"))
    pue = value_of(_get(grid, "pue"))
    if grid is None or intensity is None:
        out["co2_kg_per_year"] = None
        notes.append("no grid intensity given: CO2 not computed")
    elif kwh_year is None:
        out["co2_kg_per_year"] = None
    else:
        pue = 1.0 if pue is None else pue
        co2 = kwh_year * pue * intensity / 1000.0
        out["co2_kg_per_year"] = {
            "value": co2,
            "band": None if band is None else [b * pue * intensity / 1000.0 for b in band],
            "intensity_g_per_kwh": intensity, "pue": pue,
            "region": _get(grid, "region"), "basis": _get(grid, "basis"),
            "year": _get(grid, "year"), "source": _get(grid, "source"),
            "kind": "estimated", "method": "energy_per_year_kwh x pue x intensity_g_per_kwh / 1000",
        }
    out["notes"] = notes
    return out


# ---------------------------------------------------------------------------------------------
# the verdict


def _checks(proj: Mapping, req: Any, cfg: FeasibilityConfig) -> dict[str, dict]:
    checks: dict[str, dict] = {}
    if _get(req, "max_latency_ms") is not None:
        checks["latency"] = check_latency(proj, _get(req, "max_latency_ms"), _get(req, "percentile", "p99"), cfg)
    if _get(req, "min_throughput_per_s") is not None:
        checks["throughput"] = check_throughput(proj, _get(req, "min_throughput_per_s"), cfg)
    checks["memory"] = check_memory(proj, _get(req, "memory_headroom", 0.0))
    if _get(req, "power_budget_w") is not None:
        checks["power"] = check_power(proj, _get(req, "power_budget_w"), cfg)
    return checks


MEASURED_PROFILE = "this-machine"


def measured_operating_points(local: Mapping | None, percentile: str,
                              profiles: Mapping | None = None,
                              static: Mapping | None = None) -> list[dict]:
    """The local measurement as projection-shaped dicts (kind "measured", no band).

    Latency is the measured percentile the requirement names (p50/p95/p99 of the timed runs);
    memory is the larger of the RSS growth from session creation and timed runs (a lower bound:
    the allocator reuses freed memory) and the static weights + peak activations at that batch,
    against this machine's memory; power and energy are the
    meter's (its kind, usually "estimated" without RAPL/NVML)."""
    if not local:
        return []
    dev = local.get("device") or {}
    mem = local.get("memory") or {}
    idle = None
    hw = (profiles or {}).get("local")
    if isinstance(hw, Mapping):
        mode = next((m for m in hw.get("power_modes") or [] if m.get("name") == hw.get("default_mode")),
                    (hw.get("power_modes") or [None])[0])
        if isinstance(mode, Mapping) and value_of(mode.get("idle_w")) is not None:
            idle = {"value": value_of(mode["idle_w"]), "kind": "estimated",
                    "method": f"profile local power mode {mode.get('name')} idle_w"}
    out = []
    for b in local.get("batches") or []:
        if b.get("status") != "ok":
            continue
        lat = b.get("latency_ms") or {}
        p = value_of(lat.get(percentile))
        en = b.get("energy_per_inference_j") or {}
        power = value_of(en.get("avg_power_w")) if isinstance(en, Mapping) else None
        # What the model adds to a process. The whole process RSS would count whatever else the
        # caller holds (inside train-and-export: torch and the training data); the RSS growth
        # alone undercounts when the allocator reuses freed memory, so the static need (weights
        # + peak activations at this batch) is a floor.
        rss_delta = value_of(mem.get("rss_delta_bytes"))
        totals = ((static or {}).get(str(b.get("batch"))) or {}).get("totals") or {}
        static_need = None
        if value_of(totals.get("weight_bytes")) is not None:
            static_need = value_of(totals.get("weight_bytes")) + (value_of(totals.get("peak_activation_bytes")) or 0.0)
        candidates = [v for v in (rss_delta, static_need) if v is not None]
        mem_required = max(candidates) if candidates else None
        mem_method = ("max(measured RSS growth over session creation + timed runs (psutil), "
                      "static weights + peak activations at this batch)")
        if mem_required is None and value_of(mem.get("rss_peak_bytes")) is not None:
            mem_required = value_of(mem.get("rss_peak_bytes"))
            mem_method = "measured peak RSS of the whole process (psutil; an upper bound)"
        out.append({
            "profile": MEASURED_PROFILE, "mode": "measured", "engine": local.get("engine"),
            "precision": "fp32", "batch": b.get("batch"), "kind": "measured",
            "method": b.get("method") or local.get("method"),
            "latency_definition": f"measured {percentile} of {local.get('runs')} timed runs "
                                  "(onnxruntime session.run wall clock, input already in memory)",
            "latency_ms": {"value": p, "low": p, "high": p, **{k: value_of(v) for k, v in lat.items()}},
            "throughput_per_s": b.get("throughput_per_s"),
            "memory_required_bytes": mem_required,
            "memory_method": mem_method,
            "memory_capacity_bytes": dev.get("memory_bytes"),
            "power_w": None if power is None else {"value": power, "kind": en.get("kind"),
                                                   "method": en.get("method")},
            "energy_per_inference_j": en or None,
            "idle_power_w": idle,
            "calibration": None,
        })
    return out


def _grid_dict(grid: Any) -> dict | None:
    if grid is None:
        return None
    if isinstance(grid, Mapping):
        return dict(grid)
    if hasattr(grid, "model_dump"):
        return grid.model_dump()
    if hasattr(grid, "__dataclass_fields__"):
        return asdict(grid)
    return {k: _get(grid, k) for k in ("region", "intensity_g_per_kwh", "pue", "basis", "year", "source")}


def _requirements_dict(req: Any) -> dict:
    if hasattr(req, "model_dump"):
        return req.model_dump()
    return dict(req)


def _candidate_rank(c: tuple) -> tuple:
    proj, _, verdict, throughput = c
    # PASS/MARGINAL: the most throughput; all FAIL: the least demanding point (smallest batch)
    second = (value_of(proj.get("batch")) or 0) if verdict == FAIL else -throughput
    return (_RANK[verdict], second)


def evaluate(profile_json: Mapping, requirements: Any, grid: Any = None,
             config: FeasibilityConfig | None = None) -> dict:
    """Verdict per (profile, mode, engine, precision); returns feasibility.json content.

    ``profile_json`` is profile.json content (``projections`` list required). ``requirements``
    is a :class:`~hackforge_edge.feasibility.requirements.Requirements`; ``grid`` a GridSpec (or dict with
    intensity_g_per_kwh, pue, region, basis, year, source) or None for no CO2. Pure: no I/O.
    """
    cfg = config or FeasibilityConfig()
    percentile = _get(requirements, "percentile", "p99")
    projections = list(profile_json.get("projections") or [])
    projections += measured_operating_points(profile_json.get("local"), percentile, profile_json.get("profiles"),
                                             profile_json.get("static"))
    groups: dict[tuple, list[Mapping]] = {}
    for proj in projections:
        key = (proj.get("profile"), proj.get("mode"), proj.get("engine"), proj.get("precision"))
        groups.setdefault(key, []).append(proj)

    entries = []
    for (profile, mode, engine, precision), projs in groups.items():
        candidates = []
        for proj in sorted(projs, key=lambda p: value_of(p.get("batch")) or 0):
            checks = _checks(proj, requirements, cfg)
            verdict = _worst(c["verdict"] for c in checks.values())
            t = value_of(proj.get("throughput_per_s")) or 0.0
            candidates.append((proj, checks, verdict, t))
        proj, checks, verdict, _ = min(candidates, key=_candidate_rank)
        energy = workload_and_energy(proj, requirements, grid, cfg, profile_json.get("profiles"))
        reasons = [c["reason"] for c in checks.values()]
        if len(candidates) > 1:
            reasons.append(f"batch {proj.get('batch')} chosen of {[c[0].get('batch') for c in candidates]} "
                           + ("(all FAIL: the smallest batch is shown)" if verdict == FAIL
                              else "(best verdict, then highest throughput)"))
        entries.append({
            "profile": profile, "mode": mode, "engine": engine, "precision": precision,
            "batch": proj.get("batch"), "verdict": verdict, "reasons": reasons, "checks": checks,
            "latency_ms": proj.get("latency_ms"), "throughput_per_s": proj.get("throughput_per_s"),
            "memory_required_bytes": proj.get("memory_required_bytes"),
            "memory_capacity_bytes": proj.get("memory_capacity_bytes"),
            "memory_method": proj.get("memory_method"),
            "power_w": proj.get("power_w"), "calibration": proj.get("calibration"),
            "kind": proj.get("kind", "projected"), "method": proj.get("method"),
            "latency_definition": proj.get("latency_definition"),
            **energy,
            "batches": [{"batch": c[0].get("batch"), "verdict": c[2],
                         "latency_ms": value_of(c[0].get("latency_ms")), "throughput_per_s": c[3] or None}
                        for c in candidates],
        })

    summary: dict[str, dict] = {}
    for e in entries:
        s = summary.setdefault(e["profile"], {"best_verdict": FAIL, "best": None})
        if s["best"] is None or _RANK[e["verdict"]] < _RANK[s["best_verdict"]]:
            s.update(best_verdict=e["verdict"], best={k: e[k] for k in ("mode", "engine", "precision", "batch")})
    counts = {v: sum(e["verdict"] == v for e in entries) for v in (PASS, MARGINAL, FAIL)}
    cfg_d = asdict(cfg)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": profile_json.get("model"),
        "requirements": _requirements_dict(requirements),
        "config": cfg_d,
        "grid": _grid_dict(grid),
        "rules": {
            "latency": "decisive = value + band_position[percentile] x (high - value); FAIL if value > limit; "
                       "PASS if high <= limit and decisive <= limit x (1 - marginal_margin); else MARGINAL",
            "throughput": "FAIL if value < min; PASS if band low >= min and value >= min x (1 + marginal_margin); else MARGINAL",
            "memory": "FAIL if required > capacity; MARGINAL if required > capacity x (1 - memory_headroom); else PASS",
            "power": "FAIL if power > budget; PASS if power <= budget x (1 - marginal_margin); else MARGINAL",
            "missing": "a required check without a projected number is MARGINAL (cannot confirm)",
            "measured": "profile 'this-machine' is the local measurement: latency = the measured percentile "
                        "(no band), memory = RSS growth from session creation + timed runs vs this machine's memory",
            "overall": "worst check; per group the batch with the best verdict, then highest throughput "
                       "(when every batch FAILs, the smallest batch)",
            "energy_included": ENERGY_INCLUDED,
        },
        "entries": entries,
        "summary": summary,
        "counts": counts,
    }
