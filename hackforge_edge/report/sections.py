"""Report sections from the typed profile and feasibility: verdicts, reasons, local measurement,
static analysis and skipped projections."""

from __future__ import annotations

from hackforge_edge.feasibility.artifact import Entry, Feasibility
from hackforge_edge.profiling.artifact import Profile
from hackforge_edge.report.artifact import Cell, ReasonBlock, Table
from hackforge_edge.report.cells import cell, fmt, fmt_bytes, table

VERDICT_COLUMNS = ["Target", "Mode", "Engine / precision", "Batch", "Verdict", "Latency (band)",
                   "Throughput", "Memory req / cap", "Power", "Energy / inference", "Devices needed",
                   "Energy / year", "CO2 / year"]


def verdict_table(feas: Feasibility) -> Table:
    rows = [_verdict_row(e) for e in feas.entries]
    notes = []
    if feas.requirements.items_per_day is None:
        notes.append("No workload given (items_per_day): devices, energy per year and CO2 are not computed.")
    grid = feas.grid
    if grid is not None:
        notes.append(f"CO2 at {fmt(grid.intensity_g_per_kwh)} g CO2e/kWh ({grid.region or 'custom'}, "
                     f"{grid.basis or 'basis n/a'}, {grid.year or 'year n/a'}; "
                     f"source: {grid.source or 'n/a'}), PUE {fmt(grid.pue)}.")
    if feas.rules.get("energy_included"):
        notes.append("Energy per year includes " + feas.rules["energy_included"] + ".")
    return table("Verdict per target", VERDICT_COLUMNS, rows, notes)


def _verdict_row(e: Entry) -> list[Cell]:
    lat = e.latency_ms
    if lat is None:
        lat_text = "n/a"
    elif lat.low != lat.high:
        lat_text = f"{fmt(lat.value, 'ms')} ({fmt(lat.low)}-{fmt(lat.high)})"
    else:
        lat_text = fmt(lat.value, "ms")
    wl = e.workload
    devices = wl.devices_needed if wl is not None else None
    dev_text = "n/a" if devices is None else str(devices)
    if wl is not None and wl.devices_needed_band_high not in (None, devices):
        dev_text += f" (up to {wl.devices_needed_band_high})"
    en, year, co2, power = e.energy_per_inference_j, e.energy_per_year_kwh, e.co2_kg_per_year, e.power_w
    return [
        cell(e.profile), cell(e.mode or "-"), cell(f"{e.engine or '-'} / {e.precision or '-'}"),
        cell(str(e.batch)), Cell(text=e.verdict, verdict=e.verdict),
        cell(lat_text, e.kind, e.latency_definition),
        cell(fmt(e.throughput_per_s, "/s"), e.kind, f"batch / {e.kind} latency"),
        cell(f"{fmt_bytes(e.memory_required_bytes)} / {fmt_bytes(e.memory_capacity_bytes)}", e.kind,
             e.memory_method or "weights + peak activations + runtime overhead vs device capacity"),
        cell(fmt(power.value, "W"), power.kind, power.method) if power is not None else cell("n/a"),
        cell(fmt(en.value, "J"), en.kind, en.method),
        cell(dev_text, wl.kind if devices is not None else None, wl.method if wl is not None else None),
        cell(fmt(year.value, "kWh"), year.kind, year.method) if year is not None else cell("n/a"),
        cell(fmt(co2.value, "kg"), co2.kind, co2.method) if co2 is not None else cell("n/a"),
    ]


def reasons(feas: Feasibility) -> list[ReasonBlock]:
    out = []
    for e in feas.entries:
        title = f"{e.profile} {e.mode} ({e.engine}/{e.precision}, batch {e.batch})"
        notes = list(e.reasons) + list(e.notes)
        cal = e.calibration
        if cal is not None:
            status = "calibrated" if cal.calibrated else "NOT calibrated (prior efficiencies, wide band)"
            notes.append(f"calibration: {status}; source {cal.source}; band x{fmt(cal.band_low)}"
                         f" to x{fmt(cal.band_high)}" + (f"; {cal.note}" if cal.note else ""))
        out.append(ReasonBlock(title=" ".join(title.split()), verdict=e.verdict, reasons=notes))
    return out


def local_table(profile: Profile) -> Table | None:
    local = profile.local
    if local is None:
        return None
    rows = []
    for b in local.batches:
        if b.status != "ok" or b.latency_ms is None:
            rows.append([cell(str(b.batch)), cell(f"{b.status}: {b.reason or ''}")] + [cell("")] * 5)
            continue
        L, en = b.latency_ms, b.energy_per_inference_j
        rows.append([
            cell(str(b.batch)),
            cell(fmt(L.p50, "ms"), "measured", b.method),
            cell(fmt(L.p95, "ms"), "measured", b.method),
            cell(fmt(L.p99, "ms"), "measured", b.method),
            cell(fmt(b.throughput_per_s, "/s"), "measured", "batch / mean latency"),
            cell(fmt(en.value, "J"), en.kind, en.method) if en is not None else cell("n/a"),
            cell(fmt(en.avg_power_w, "W"), en.kind, en.method) if en is not None else cell("n/a"),
        ])
    dev, mem = local.device, local.memory
    notes = [
        f"Engine {local.engine} (onnxruntime {local.onnxruntime_version}, providers "
        f"{', '.join(local.providers)}, threads {local.threads or 'onnxruntime default'}); "
        f"{local.warmup} warm-up + up to {local.runs} timed runs per batch; method: {local.method}.",
        f"Device: {dev.get('cpu_model', 'n/a')}, {dev.get('logical_cores', 'n/a')} logical cores.",
        f"Memory [measured, {mem.method}]: RSS peak {fmt_bytes(mem.rss_peak_bytes)}, "
        f"delta {fmt_bytes(mem.rss_delta_bytes)}.",
        f"Session creation [measured]: {fmt(local.session_create_s.value, 's')}.",
    ]
    return table("Local measurement (this machine)",
                 ["Batch", "p50", "p95", "p99", "Throughput", "Energy / inference", "Avg power"], rows, notes)


def static_table(profile: Profile) -> Table | None:
    if not profile.static:
        return None
    rows, notes = [], []
    for s in sorted(profile.static.values(), key=lambda s: s.batch):
        t, m = s.totals, s.method
        rows.append([cell(str(s.batch)),
                     cell(fmt(t.macs), "static", m), cell(fmt(t.flops), "static", m),
                     cell(fmt(t.params), "static", m), cell(fmt_bytes(t.weight_bytes), "static", m),
                     cell(fmt_bytes(t.bytes_moved), "static", m),
                     cell(fmt_bytes(t.peak_activation_bytes), "static", m), cell(fmt(t.nodes), "static", m)])
        if s.uncosted_ops:
            notes.append(f"batch {s.batch}: ops not costed (listed, not counted as zero): "
                         + ", ".join(f"{k} x{v}" for k, v in s.uncosted_ops.items()))
        notes += [f"batch {s.batch}: {w}" for w in s.warnings]
    notes.append("1 MAC = 2 FLOPs, counted on the exported ONNX graph.")
    return table("Static analysis (ONNX graph)", ["Batch", "MACs", "FLOPs", "Params", "Weights",
                                                   "Bytes moved", "Peak activations", "Nodes"], rows, notes)


def skipped_table(profile: Profile) -> Table | None:
    if not profile.skipped:
        return None
    return table("Projections skipped", ["Target", "Mode", "Precision", "Batch", "Reason"],
                 [[cell(s.profile), cell(s.mode or "-"), cell(s.precision), cell(str(s.batch)), cell(s.reason)]
                  for s in profile.skipped])


def precision_table(feas: Feasibility) -> Table:
    """Per target: the recommended mode and precision with the accuracy it kept, or why none."""
    limit = feas.requirements.max_accuracy_drop_pp
    by_key = {(e.profile, e.mode, e.precision, e.engine): e for e in feas.entries}
    rows = []
    for name, s in feas.summary.items():
        r = s.recommended
        if r is None:
            rows.append([cell(name), cell("-"), cell("-"), Cell(text="none feasible", verdict="FAIL"),
                         cell("n/a"), cell("n/a"), cell("n/a")])
            continue
        e = by_key[(name, r.mode, r.precision, r.engine)]
        acc = e.accuracy
        method = f"{acc.source} ({acc.kind})" if acc is not None else None
        cost = e.cost
        rows.append([
            cell(name), cell(r.mode), cell(r.precision), Cell(text=r.verdict, verdict=r.verdict),
            cell(fmt(r.throughput_per_s, "/s"), e.kind, f"batch / {e.kind} latency"),
            cell("not checked" if r.accuracy is None else f"{100 * r.accuracy:.1f} %"
                 + ("" if r.accuracy_drop_pp is None or r.precision == "fp32" else
                    " (no loss vs FP32)" if r.accuracy_drop_pp <= 0 else
                    f" ({r.accuracy_drop_pp:.2f} pp below FP32)"),
                 "measured" if r.accuracy is not None else None, method),
            cell("n/a" if cost is None else f"{cost.cost_per_million_inferences:.3g} {cost.currency}",
                 "estimated" if cost is not None else None, cost.method if cost is not None else None)])
    refused = sorted({e.recommendation_note for e in feas.entries if e.verdict != "FAIL" and not e.recommendable})
    notes = [f"A precision is recommended only when its top-1 drop vs FP32 on held-out target data is "
             f"known and <= {limit:g} pp; then best verdict, lowest cost per million, highest throughput."]
    notes += [f"Not recommended: {n}" for n in refused]
    return table("Best feasible precision per target",
                 ["Target", "Mode", "Precision", "Verdict", "Throughput", "Top-1 kept", "Per million inferences"],
                 rows, notes)
