"""Build the feasibility report of a bundle: report.json, report.md, report.html, figures/*.png.

The report is assembled once as plain data (``report.json``: sections of tables whose cells
carry their text, kind and method), then rendered twice: Markdown and a self-contained HTML
page (Jinja2; figures embedded as base64 PNG, CSS inline, no external fetches).

Kinds (every number carries one): ``measured`` on this machine with the stated method,
``estimated`` from a model of power with its inputs, ``projected`` from a hardware profile
applied to the static analysis with its calibration and error band, ``static`` counted from
the ONNX graph.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError
from hackforge_edge.feasibility.verdict import value_of

SCHEMA_VERSION = 1
PROFILE_JSON = "profile.json"
FEASIBILITY_JSON = "feasibility.json"
REPORT_JSON, REPORT_MD, REPORT_HTML = "report.json", "report.md", "report.html"
FIGURES_DIR = "figures"

LEGEND = {
    "measured": "obtained on this machine, with the method named (e.g. onnxruntime wall clock, "
                "NVML energy counter, test-set evaluation)",
    "estimated": "from a model of power (e.g. TDP x utilisation, power x latency) with its inputs; "
                 "not a meter reading",
    "projected": "a hardware profile applied to the static analysis, with its calibration and "
                 "error band; not run on that hardware",
    "static": "counted from the exported ONNX graph (MACs, parameters, bytes)",
}
KIND_TAG = {"measured": "M", "estimated": "E", "projected": "P", "static": "S"}


# ---------------------------------------------------------------------------------------------
# cells and tables


def fmt(x: Any, unit: str = "", nd: int = 3) -> str:
    """Number with ``nd`` significant digits (integers >= 1000 in full with thin grouping)."""
    v = value_of(x)
    if v is None:
        return "n/a"
    if v == 0:
        s = "0"
    elif abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) < 1e-3:
        s = f"{v:.{nd - 1}e}"
    else:
        s = f"{v:.{nd}g}"
    return f"{s} {unit}".rstrip()


def fmt_bytes(b: Any) -> str:
    v = value_of(b)
    if v is None:
        return "n/a"
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= div:
            return f"{v / div:.3g} {unit}"
    return f"{v:.0f} B"


def cell(text: str, kind: str | None = None, method: str | None = None) -> dict:
    """A table cell: its text, the kind of number it is (legend key) and the method."""
    return {"text": text, "kind": kind, "method": method}


def table(title: str, columns: Sequence[str], rows: list[list], notes: Iterable[str] = ()) -> dict:
    """A titled table; ``methods`` collects, per column, the distinct methods of its cells."""
    methods: dict[str, list[str]] = {}
    for row in rows:
        for col, c in zip(columns, row):
            if isinstance(c, Mapping) and c.get("method"):
                seen = methods.setdefault(col, [])
                if str(c["method"]) not in seen:
                    seen.append(str(c["method"]))
    if len(methods) > 1 and len({tuple(m) for m in methods.values()}) == 1:
        methods = {"all columns": next(iter(methods.values()))}
    return {"title": title, "columns": list(columns), "rows": rows, "notes": [n for n in notes if n],
            "methods": methods}


def _kind_of(x: Any, default: str | None) -> str | None:
    return x.get("kind", default) if isinstance(x, Mapping) else default


def _method_of(x: Any, default: str | None = None) -> str | None:
    return x.get("method", default) if isinstance(x, Mapping) else default


# ---------------------------------------------------------------------------------------------
# sections


def _verdict_table(feas: Mapping, profile: Mapping | None) -> dict:
    cols = ["Target", "Mode", "Engine / precision", "Batch", "Verdict", "Latency (band)",
            "Throughput", "Memory req / cap", "Power", "Energy / inference", "Devices needed",
            "Energy / year", "CO2 / year"]
    rows = []
    proj_method = None
    for p in (profile or {}).get("projections") or []:
        proj_method = p.get("method")
        break
    for e in feas.get("entries", []):
        lat = e.get("latency_ms") or {}
        kind = e.get("kind", "projected")
        wl = e.get("workload") or {}
        en = e.get("energy_per_inference_j") or {}
        year = e.get("energy_per_year_kwh") or {}
        co2 = e.get("co2_kg_per_year") or {}
        power = e.get("power_w")
        has_band = isinstance(lat, Mapping) and lat.get("low") is not None and lat.get("low") != lat.get("high")
        lat_text = (f"{fmt(lat, 'ms')} ({fmt(lat.get('low'))}-{fmt(lat.get('high'))})" if has_band
                    else fmt(lat, "ms"))
        devices = wl.get("devices_needed")
        dev_text = "n/a" if devices is None else str(devices)
        if wl.get("devices_needed_band_high") not in (None, devices):
            dev_text += f" (up to {wl['devices_needed_band_high']})"
        rows.append([
            cell(str(e.get("profile"))), cell(str(e.get("mode") or "-")),
            cell(f"{e.get('engine') or '-'} / {e.get('precision') or '-'}"), cell(str(e.get("batch"))),
            {"text": e.get("verdict"), "verdict": e.get("verdict")},
            cell(lat_text, kind, e.get("latency_definition") or proj_method),
            cell(fmt(e.get("throughput_per_s"), "/s"), kind, "batch / projected latency"),
            cell(f"{fmt_bytes(e.get('memory_required_bytes'))} / {fmt_bytes(e.get('memory_capacity_bytes'))}",
                 kind, "weights + peak activations + runtime overhead vs device capacity"),
            cell(fmt(power, "W"), _kind_of(power, "estimated"), _method_of(power)),
            cell(fmt(en, "J"), en.get("kind"), en.get("method")),
            cell(dev_text, "projected" if devices is not None else None, wl.get("method")),
            cell(fmt(year, "kWh"), year.get("kind") if year else None, year.get("method") if year else None),
            cell(fmt(co2, "kg") if co2 else "n/a", co2.get("kind") if co2 else None,
                 co2.get("method") if co2 else None),
        ])
    notes = []
    req = feas.get("requirements") or {}
    if req.get("items_per_day") is None:
        notes.append("No workload given (items_per_day): devices, energy per year and CO2 are not computed.")
    grid = feas.get("grid")
    if grid:
        notes.append(f"CO2 at {fmt(grid.get('intensity_g_per_kwh'))} g CO2e/kWh ({grid.get('region') or 'custom'}, "
                     f"{grid.get('basis') or 'basis n/a'}, {grid.get('year') or 'year n/a'}; "
                     f"source: {grid.get('source') or 'n/a'}), PUE {fmt(grid.get('pue'))}.")
    rules = feas.get("rules") or {}
    if rules.get("energy_included"):
        notes.append("Energy per year includes " + rules["energy_included"] + ".")
    return table("Verdict per target", cols, rows, notes)


def _reasons(feas: Mapping) -> list[dict]:
    out = []
    for e in feas.get("entries", []):
        title = f"{e.get('profile')} {e.get('mode') or ''} ({e.get('engine')}/{e.get('precision')}, batch {e.get('batch')})"
        calib = e.get("calibration") or {}
        notes = list(e.get("reasons", [])) + list(e.get("notes") or [])
        if calib:
            status = "calibrated" if calib.get("calibrated") else "NOT calibrated (prior efficiencies, wide band)"
            notes.append(f"calibration: {status}; source {calib.get('source', 'n/a')}; band x{fmt(calib.get('band_low'))}"
                         f" to x{fmt(calib.get('band_high'))}" + (f"; {calib['note']}" if calib.get("note") else ""))
        out.append({"title": " ".join(title.split()), "verdict": e.get("verdict"), "reasons": notes})
    return out


def _local_table(profile: Mapping | None) -> dict | None:
    local = (profile or {}).get("local")
    if not local:
        return None
    method = local.get("method")
    rows = []
    for b in local.get("batches") or []:
        if b.get("status") != "ok":
            rows.append([cell(str(b.get("batch"))), cell(f"{b.get('status')}: {b.get('reason') or ''}")] + [cell("")] * 5)
            continue
        L = b.get("latency_ms") or {}
        en = b.get("energy_per_inference_j") or {}
        rows.append([
            cell(str(b.get("batch"))),
            cell(fmt(L.get("p50"), "ms"), "measured", b.get("method") or method),
            cell(fmt(L.get("p95"), "ms"), "measured", b.get("method") or method),
            cell(fmt(L.get("p99"), "ms"), "measured", b.get("method") or method),
            cell(fmt(b.get("throughput_per_s"), "/s"), "measured", "batch / mean latency"),
            cell(fmt(en, "J"), en.get("kind"), en.get("method")),
            cell(fmt(en.get("avg_power_w"), "W"), en.get("kind"), en.get("method")),
        ])
    dev = local.get("device") or {}
    mem = local.get("memory") or {}
    notes = [
        f"Engine {local.get('engine')} (onnxruntime {local.get('onnxruntime_version')}, providers "
        f"{', '.join(local.get('providers') or [])}, threads {local.get('threads') or 'onnxruntime default'}); {local.get('warmup')} warm-up "
        f"+ {local.get('runs')} timed runs per batch; method: {method}.",
        f"Device: {dev.get('cpu_model', 'n/a')}, {dev.get('logical_cores', 'n/a')} logical cores.",
    ]
    if mem:
        notes.append(f"Memory [measured, {mem.get('method', 'RSS')}]: RSS peak {fmt_bytes(mem.get('rss_peak_bytes'))}, "
                     f"delta {fmt_bytes(mem.get('rss_delta_bytes'))}.")
    sc = local.get("session_create_s")
    if sc:
        notes.append(f"Session creation [measured]: {fmt(sc, 's')}.")
    return table("Local measurement (this machine)",
                 ["Batch", "p50", "p95", "p99", "Throughput", "Energy / inference", "Avg power"], rows, notes)


def _static_table(profile: Mapping | None) -> dict | None:
    static = (profile or {}).get("static") or {}
    if not static:
        return None
    rows = []
    notes = []
    for key in sorted(static, key=lambda k: int(k) if str(k).isdigit() else 0):
        s = static[key]
        t = s.get("totals") or {}
        m = s.get("method")
        rows.append([cell(str(s.get("batch", key))),
                     cell(fmt(t.get("macs")), "static", m), cell(fmt(t.get("flops")), "static", m),
                     cell(fmt(t.get("params")), "static", m), cell(fmt_bytes(t.get("weight_bytes")), "static", m),
                     cell(fmt_bytes(t.get("bytes_moved")), "static", m),
                     cell(fmt_bytes(t.get("peak_activation_bytes")), "static", m), cell(fmt(t.get("nodes")), "static", m)])
        if s.get("uncosted_ops"):
            notes.append(f"batch {s.get('batch', key)}: ops not costed (listed, not counted as zero): "
                         + ", ".join(f"{k} x{v}" for k, v in s["uncosted_ops"].items()))
        for w in s.get("warnings") or []:
            notes.append(f"batch {s.get('batch', key)}: {w}")
    notes.append("1 MAC = 2 FLOPs, counted on the exported ONNX graph.")
    return table("Static analysis (ONNX graph)", ["Batch", "MACs", "FLOPs", "Params", "Weights",
                                                   "Bytes moved", "Peak activations", "Nodes"], rows, notes)


def _flatten(obj: Any, prefix: str = "", max_rows: int = 60) -> list[tuple[str, Any]]:
    """Scalar leaves of a nested dict/list as (dotted path, value) pairs."""
    out: list[tuple[str, Any]] = []

    def walk(x: Any, path: str) -> None:
        if len(out) >= max_rows:
            return
        if isinstance(x, Mapping):
            for k, v in x.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(x, list) and x and all(isinstance(i, Mapping) for i in x):
            for i, v in enumerate(x):
                name = v.get("name") or v.get("output") or v.get("phase") or str(i)
                walk({k: vv for k, vv in v.items() if k not in ("name", "output", "phase")}, f"{path}[{name}]")
        elif isinstance(x, list) and x and all(isinstance(i, list) for i in x):
            return  # matrices are rendered separately
        elif isinstance(x, list):
            out.append((path, ", ".join(str(fmt(i) if value_of(i) is not None else i) for i in x[:12])))
        else:
            out.append((path, x))

    walk(obj, prefix)
    return out


def _value_text(v: Any, key: str = "") -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if v is not None else "n/a"
    if isinstance(v, int) and key.rsplit(".", 1)[-1] in ("year", "schema_version", "seed"):
        return str(v)  # identifiers, not quantities: no digit grouping
    if value_of(v) is not None and not isinstance(v, str):
        return fmt(v, nd=4)
    return str(v)


def _metrics_section(metrics: Mapping | None) -> tuple[dict | None, dict | None]:
    if not metrics:
        return None, None
    kind = metrics.get("kind", "measured")
    method = metrics.get("method") or "evaluated on the held-out target-domain test split"
    skip = {"kind", "method", "confusion_matrix", "labels", "class_names"}
    rows = [[cell(k), cell(_value_text(v), kind if value_of(v) is not None and not isinstance(v, (str, bool)) else None, method)]
            for k, v in _flatten({k: v for k, v in metrics.items() if k not in skip})]
    cm = None
    cmat = _find_key(metrics, "confusion_matrix")
    if isinstance(cmat, list) and cmat and all(isinstance(r, list) for r in cmat):
        labels = _find_key(metrics, "class_names") or _find_key(metrics, "labels") or [str(i) for i in range(len(cmat))]
        labels = [str(x) for x in labels]
        cm = table("Confusion matrix (rows = true, columns = predicted)", ["true \\ pred"] + labels,
                   [[cell(labels[i] if i < len(labels) else str(i))] + [cell(str(v), kind, method) for v in r]
                    for i, r in enumerate(cmat)])
    return table("Model quality (metrics.json)", ["Metric", "Value"], rows, [f"method: {method}"]), cm


def _find_key(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _band_text(band: Any) -> str:
    """Band of an energy figure: relative fractions ([-0.6, 1.9] -> -60 %/+190 %) or absolute."""
    if isinstance(band, Mapping):
        band = [band.get("low"), band.get("high")]
    if not (isinstance(band, (list, tuple)) and len(band) == 2) or None in band:
        return ""
    lo, hi = float(band[0]), float(band[1])
    if lo <= 0 <= hi and hi < 20:
        return f" (band {lo:+.0%}/{hi:+.0%})"
    return f" (band {fmt(lo)}-{fmt(hi)})"


def _carbon_table(tc: Mapping | None) -> dict | None:
    if not tc:
        return None
    phases = tc.get("phases") or []
    if isinstance(phases, Mapping):
        phases = [{"phase": k, **v} for k, v in phases.items()]
    rows = []
    for p in phases:
        e_j = value_of(p.get("energy_j"))
        kwh = value_of(p.get("energy_kwh")) if p.get("energy_kwh") is not None else (None if e_j is None else e_j / 3.6e6)
        band_text = _band_text(p.get("band"))
        kind, method = p.get("kind"), p.get("method")
        rows.append([cell(str(p.get("phase") or p.get("name") or "-")),
                     # a cache hit spent nothing in this run: its 0 s is not a measurement
                     cell(fmt(p.get("duration_s"), "s") if kind != "cache-hit" else "cache hit",
                          "measured" if p.get("duration_s") is not None and kind != "cache-hit" else None,
                          "wall clock"),
                     cell(fmt(e_j, "J") + band_text, kind, method),
                     cell(fmt(kwh, "kWh"), kind, method),
                     cell(fmt(p.get("co2_kg"), "kg"), kind, method),
                     cell(str(kind or "n/a")), cell(str(method or "n/a"))])
    totals = tc.get("totals") or tc.get("total") or {}
    notes = []
    if totals:
        notes.append("Totals: " + ", ".join(f"{k} = {_value_text(v)}" for k, v in _flatten(totals)))
    for k in ("grid", "region", "intensity_g_per_kwh", "pue", "note", "notes", "source_pretrain_one_off"):
        if tc.get(k) is not None:
            v = tc[k]
            notes.append(f"{k}: " + (", ".join(f"{a}={_value_text(b, a)}" for a, b in _flatten(v)) if isinstance(v, Mapping)
                                     else "; ".join(map(str, v)) if isinstance(v, list) else str(v)))
    return table("Training carbon (training_carbon.json)",
                 ["Phase", "Duration", "Energy", "Energy (kWh)", "CO2", "Kind", "Method"], rows, notes)


# fields that are settings (no kind) or counted from the file/graph (static), not measurements
_SETTING_FIELDS = {"atol", "rtol", "opset", "schema_version", "seed", "year", "batch_size",
                   "runs", "warmup_runs", "threads", "max_accuracy_drop_pp", "min_speedup"}
_STATIC_FIELDS = {"node_count", "file_size_bytes", "size_bytes", "source_size_bytes",
                  "fp32_size_bytes", "size_ratio", "calibration_samples"}


def _field_kind(key: str, v: Any, kind: str) -> str | None:
    leaf = key.rsplit(".", 1)[-1]
    if value_of(v) is None or isinstance(v, (bool, str)) or leaf in _SETTING_FIELDS:
        return None
    return "static" if leaf in _STATIC_FIELDS else kind


def _generic_table(title: str, data: Mapping | None, kind: str, method: str) -> dict | None:
    if not data:
        return None
    method = data.get("method", method) if isinstance(data, Mapping) else method
    rows = [[cell(k), cell(_value_text(v, k), _field_kind(k, v, kind), method)]
            for k, v in _flatten({k: v for k, v in data.items() if k not in ("method",)})]
    return table(title, ["Field", "Value"], rows, [f"method: {method}"])


def _manifest_table(manifest: Mapping | None) -> dict | None:
    if not manifest:
        return None
    cfg = manifest.get("config") or {}
    versions = manifest.get("versions") or {}
    rows = [[cell(k), cell(str(v))] for k, v in (
        ("name", manifest.get("name")), ("started_at", manifest.get("started_at")),
        ("finished_at", manifest.get("finished_at")), ("seed", manifest.get("seed")),
        ("model", cfg.get("model")), ("strategy", cfg.get("strategy")),
        ("artifacts", len(manifest.get("artifacts") or {})),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
    ) if v not in (None, "")]
    return table("Run manifest (summary)", ["Field", "Value"], rows)


_COMPARE_SKIP = ("path", "provenance", "energy_method", "energy_kind", "energy_band", "energy_complete")


def _kind_from_provenance(text: str | None) -> str | None:
    if not text:
        return None
    first = text.split()[0].strip("(:,").lower()
    return {"counted": "static"}.get(first, first if first in LEGEND else None)


def _comparison_table(rows_in: Sequence[Mapping] | None) -> dict | None:
    """Rows of energy.compare.compare_bundles (or any list of flat dicts) as a table."""
    if not rows_in:
        return None
    flat_rows: list[dict[str, Any]] = []
    for r in rows_in:
        flat: dict[str, Any] = {}
        for k, v in r.items():
            if k in _COMPARE_SKIP or k.endswith("_method") or k.endswith("_kind"):
                continue
            if isinstance(v, Mapping) and "value" not in v:
                for kk, vv in v.items():
                    if kk not in ("kinds", "baseline"):
                        flat[f"{k}.{kk}"] = vv
            else:
                flat[k] = v
        flat_rows.append(flat)
    cols: list[str] = []
    for f in flat_rows:
        cols += [k for k in f if k not in cols]
    rows = []
    for r, f in zip(rows_in, flat_rows):
        prov = r.get("provenance") if isinstance(r.get("provenance"), Mapping) else {}
        row = []
        for c in cols:
            v = f.get(c)
            base = c.split(".", 1)[-1] if c.startswith("vs_scratch.") else c
            method = r.get(f"{c}_method") or _method_of(v) or prov.get(base)
            kind = r.get(f"{c}_kind") or _kind_of(v, None) or _kind_from_provenance(prov.get(base))
            if kind is None and base.startswith(("energy", "co2")):
                kind = r.get("energy_kind")
                method = method or r.get("energy_method")
            text = _value_text(v)
            if c == "energy_kwh" and r.get("energy_band"):
                text += _band_text(r.get("energy_band"))
            row.append(cell(text, kind if value_of(v) is not None else None, method))
        rows.append(row)
    notes = sorted({f"{k}: {v}" for r in rows_in for k, v in (r.get("provenance") or {}).items()})
    baselines = sorted({(r.get("vs_scratch") or {}).get("baseline") for r in rows_in} - {None})
    if baselines:
        notes.append("vs_scratch columns: change against the from-scratch bundle " + ", ".join(baselines))
    return table("Strategy comparison", cols, rows, notes)


def _skipped_table(profile: Mapping | None) -> dict | None:
    skipped = (profile or {}).get("skipped") or []
    if not skipped:
        return None
    return table("Projections skipped", ["Target", "Mode", "Precision", "Batch", "Reason"],
                 [[cell(str(s.get(k) if s.get(k) is not None else "-")) for k in ("profile", "mode", "precision", "batch", "reason")]
                  for s in skipped])


# ---------------------------------------------------------------------------------------------
# assemble, render, write


def assemble(profile: Mapping, feasibility: Mapping, *, metrics: Mapping | None = None,
             training_carbon: Mapping | None = None, export_validation: Mapping | None = None,
             manifest: Mapping | None = None, comparison_rows: Sequence[Mapping] | None = None,
             figures: Sequence[str] = (), bundle_dir: str | None = None,
             generated_at: str | None = None) -> dict:
    """report.json content from the bundle's parts (pure: no I/O)."""
    model = profile.get("model") or {}
    metrics_t, confusion_t = _metrics_section(metrics)
    sections = [
        _verdict_table(feasibility, profile),
        _local_table(profile),
        _static_table(profile),
        metrics_t, confusion_t,
        _carbon_table(training_carbon),
        _generic_table("Export validation (export_validation.json)", export_validation, "measured",
                       "ONNX Runtime vs PyTorch outputs on the same inputs"),
        _comparison_table(comparison_rows),
        _skipped_table(profile),
        _manifest_table(manifest),
    ]
    cfg = feasibility.get("config") or {}
    req = feasibility.get("requirements") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at,
        "bundle": bundle_dir,
        "title": f"Feasibility report: {Path(str(model.get('path') or 'model')).name}"
                 + (f" ({manifest.get('name')})" if manifest and manifest.get("name") else ""),
        "legend": LEGEND,
        "model": model,
        "counts": feasibility.get("counts"),
        "summary": feasibility.get("summary"),
        "requirements": req,
        "thresholds": cfg,
        "rules": feasibility.get("rules"),
        "grid": feasibility.get("grid"),
        "reasons": _reasons(feasibility),
        "figures": {name: f"{FIGURES_DIR}/{name}.png" for name in figures},
        "sections": [s for s in sections if s],
        "sources": {
            "feasibility": feasibility, "local": profile.get("local"),
            "metrics": metrics, "training_carbon": training_carbon,
            "export_validation": export_validation, "comparison": list(comparison_rows or []),
        },
    }


def _md_cell(c: Any) -> str:
    if isinstance(c, Mapping):
        text = str(c.get("text", ""))
        tag = KIND_TAG.get(c.get("kind") or "")
        if c.get("verdict"):
            text = f"**{text}**"
        if tag and text not in ("n/a", ""):
            text += f" [{tag}]"
    else:
        text = str(c)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Mapping) -> str:
    lines = [f"# {report['title']}", ""]
    if report.get("generated_at"):
        lines += [f"Generated {report['generated_at']}" + (f" from `{report['bundle']}`" if report.get("bundle") else ""), ""]
    counts = report.get("counts") or {}
    lines += ["Verdicts: " + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    lines += ["## Legend: kinds of numbers", ""]
    lines += [f"- **[{KIND_TAG[k]}] {k}**: {v}" for k, v in report["legend"].items()] + [""]
    lines += ["## Requirements and thresholds", ""]
    req = {k: v for k, v in (report.get("requirements") or {}).items() if v is not None}
    lines += ["- requirements: " + ", ".join(f"{k}={v}" for k, v in req.items())]
    lines += ["- thresholds: " + ", ".join(f"{k}={v}" for k, v in (report.get("thresholds") or {}).items())]
    for k, v in (report.get("rules") or {}).items():
        lines.append(f"- rule {k}: {v}")
    lines.append("")
    sections = list(report.get("sections") or [])
    for i, t in enumerate(sections):
        lines += _md_table(t)
        if i == 0:
            lines += ["## Reasons", ""]
            for r in report.get("reasons") or []:
                lines.append(f"- **{r['title']}: {r['verdict']}**")
                lines += [f"  - {x}" for x in r["reasons"]]
            lines.append("")
            if report.get("figures"):
                lines += ["## Figures", ""]
                lines += [f"![{name}]({path})" for name, path in report["figures"].items()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_table(t: Mapping) -> list[str]:
    lines = [f"## {t['title']}", ""]
    if t["rows"]:
        lines.append("| " + " | ".join(t["columns"]) + " |")
        lines.append("|" + "---|" * len(t["columns"]))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t["rows"]]
        lines.append("")
    lines += [f"- {n}" for n in t.get("notes") or []]
    if t.get("methods"):
        lines += ["", "Methods:"] + [f"- {col}: " + " | ".join(ms) for col, ms in t["methods"].items()]
    lines.append("")
    return lines


def render_html(report: Mapping, figure_png: Mapping[str, bytes]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True,
    )
    figures = [{"name": name, "path": path,
                "data": base64.b64encode(figure_png[name]).decode("ascii")}
               for name, path in (report.get("figures") or {}).items() if name in figure_png]
    captions = {
        "latency": "Projected latency per target (error bar = projection band, colour = verdict) against the "
                   "requirement line; blue squares: measured on this machine (marker p50, bar min to p99).",
        "energy": "Energy per inference per target, with its band; the kind is in each label.",
        "memory": "Memory required (projected) vs device capacity; dotted line: usable after the headroom.",
    }
    return env.get_template("report.html.j2").render(
        r=report, figures=figures, captions=captions, kind_tag=KIND_TAG)


def load_bundle_parts(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """The JSON files a report reads; missing optional ones are None. Needs profile.json."""
    d = Path(bundle_dir)
    if not d.is_dir():
        raise BundleError(f"{d}: not a directory (expected a run bundle)")
    if not (d / bundle.MODEL).is_file() and not (d / PROFILE_JSON).is_file():
        raise BundleError(f"{d}: not a run bundle (no {bundle.MODEL} or {PROFILE_JSON}); "
                          "make one with `hf-edge train-and-export` or profile a model with "
                          "`hf-edge profile MODEL.onnx --out DIR`")
    if not (d / PROFILE_JSON).is_file():
        raise BundleError(f"{d}: no {PROFILE_JSON} in the bundle; run `hf-edge profile {d}` first")
    parts: dict[str, Any] = {"profile": bundle.read_json(d / PROFILE_JSON)}
    parts["feasibility"] = bundle.read_json(d / FEASIBILITY_JSON) if (d / FEASIBILITY_JSON).is_file() else None
    return {**parts, **_training_parts(d)}


def _training_parts(d: Path) -> dict[str, Any]:
    """metrics, training carbon, export validation and manifest, read through their typed
    models (a file of another shape or schema version is a one-line BundleError), as JSON."""
    from hackforge_edge.bundle.manifest import Manifest
    from hackforge_edge.energy.artifact import TrainingCarbon
    from hackforge_edge.export.artifact import ExportValidation
    from hackforge_edge.training.artifacts import Metrics

    return {key: cls.read(d).to_json() if (d / cls.FILENAME).is_file() else None
            for key, cls in (("metrics", Metrics), ("training_carbon", TrainingCarbon),
                             ("export_validation", ExportValidation), ("manifest", Manifest))}


def build_report(bundle_dir: str | os.PathLike, *, profile: Mapping | None = None,
                 feasibility: Mapping | None = None, comparison_rows: Sequence[Mapping] | None = None,
                 out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write report.json, report.md, report.html and figures/*.png; return their paths.

    ``profile`` / ``feasibility`` default to the bundle's profile.json / feasibility.json;
    ``out_dir`` defaults to the bundle. Other parts (metrics, training carbon, export
    validation, manifest) are read from the bundle when present.
    """
    d = Path(bundle_dir)
    out = Path(out_dir) if out_dir is not None else d
    if profile is None or feasibility is None:
        parts = load_bundle_parts(d)
    else:
        parts = {"profile": profile, "feasibility": feasibility, **_training_parts(d)}
    profile = profile if profile is not None else parts["profile"]
    feasibility = feasibility if feasibility is not None else parts["feasibility"]
    if feasibility is None:
        raise BundleError(f"{d}: no {FEASIBILITY_JSON} in the bundle; run `hf-edge profile {d}` first")

    from hackforge_edge.report.figures import make_figures

    pngs = make_figures(feasibility, profile)
    paths: dict[str, Path] = {}
    for name, png in pngs.items():
        paths[f"figure_{name}"] = bundle.atomic_write_bytes(out / FIGURES_DIR / f"{name}.png", png)
    report = assemble(profile, feasibility, metrics=parts.get("metrics"),
                      training_carbon=parts.get("training_carbon"),
                      export_validation=parts.get("export_validation"), manifest=parts.get("manifest"),
                      comparison_rows=comparison_rows, figures=list(pngs), bundle_dir=str(d),
                      generated_at=bundle.utc_now())
    paths["json"] = bundle.atomic_write_json(out / REPORT_JSON, report)
    paths["md"] = bundle.atomic_write_text(out / REPORT_MD, render_markdown(report))
    paths["html"] = bundle.atomic_write_text(out / REPORT_HTML, render_html(report, pngs))
    return paths
