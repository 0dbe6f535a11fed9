"""Report sections about the training run: model quality, training carbon, export validation,
the manifest summary and the strategy comparison (from the views in :mod:`.inputs`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from hackforge_edge.report.artifact import Table
from hackforge_edge.report.cells import cell, fmt, table, value_cell
from hackforge_edge.report.inputs import PER_CLASS_FIELDS, CarbonView, QualityView, ValidationView

# identifiers and settings, not quantities: shown without a kind and without digit grouping
_SETTINGS = {"n", "positive_class", "average", "split", "seed", "year"}


def quality_tables(q: QualityView) -> list[Table]:
    """Scalar metrics, per-class values and the confusion matrix (rows = true class)."""
    rows = [[cell(k), value_cell(v, None if k in _SETTINGS else q.kind, q.method)] for k, v in q.scalars]
    out = [table("Model quality (metrics.json)", ["Metric", "Value"], rows, [f"method: {q.method}"])]
    if q.per_class:
        out.append(table("Per class (one vs rest)", ["Class", *PER_CLASS_FIELDS],
                         [[cell(name)] + [value_cell(vals.get(f), None if f == "support" else q.kind,
                                                     q.method) for f in PER_CLASS_FIELDS]
                          for name, vals in q.per_class.items()]))
    cm = q.confusion_matrix
    if cm:
        labels = q.class_names if len(q.class_names) == len(cm) else [str(i) for i in range(len(cm))]
        out.append(table("Confusion matrix (rows = true, columns = predicted)", ["true \\ pred", *labels],
                         [[cell(labels[i])] + [cell(str(v), q.kind, q.method) for v in r]
                          for i, r in enumerate(cm)]))
    return out


def _band_text(band: tuple[float, float] | None) -> str:
    """A relative band of an energy figure ([-0.6, 1.9] -> -60 %/+190 %)."""
    if band is None:
        return ""
    return f" (band {band[0]:+.0%}/{band[1]:+.0%})"


def carbon_table(c: CarbonView) -> Table:
    rows = []
    for p in c.phases:
        cache_hit = p.kind == "cache-hit"   # spent nothing in this run: its 0 s is not a measurement
        rows.append([cell(p.phase),
                     cell("cache hit" if cache_hit else fmt(p.duration_s, "s"),
                          None if cache_hit else "measured", "wall clock"),
                     cell(fmt(p.energy_j, "J") + _band_text(p.band), p.kind, p.method),
                     cell(fmt(p.energy_kwh, "kWh"), p.kind, p.method),
                     cell(fmt(p.co2_kg, "kg"), p.kind, p.method),
                     cell(p.kind), cell(p.method)])
    t, g = c.totals, c.grid
    notes = [f"Totals ({c.kind}): {fmt(t.get('duration_s'), 's')}, {fmt(t.get('energy_kwh'), 'kWh')}"
             f"{_band_text(tuple(t['band']) if t.get('band') else None)}, {fmt(t.get('co2_kg'), 'kg')} CO2e"
             + ("" if t.get("complete", True) else "; incomplete: a lower bound")]
    if g:
        notes.append(f"grid: {g.get('region')} {fmt(g.get('intensity_g_per_kwh'))} g CO2e/kWh "
                     f"({g.get('basis')}, {g.get('year') or 'year n/a'}; source: {g.get('source')}), "
                     f"PUE {fmt(g.get('pue'))}")
    return table("Training carbon (training_carbon.json)",
                 ["Phase", "Duration", "Energy", "Energy (kWh)", "CO2", "Kind", "Method"], rows,
                 notes + c.notes)


def validation_tables(v: ValidationView) -> list[Table]:
    rows = [[cell(o.name), cell(fmt(o.max_abs_diff), "measured", v.method),
             cell(fmt(o.max_rel_diff), "measured", v.method), cell("yes" if o.passed else "NO")]
            for o in v.outputs]
    notes = [f"tolerance: atol {v.atol:g}, rtol {v.rtol:g}; {'passed' if v.passed else 'NOT passed'}",
             f"checked at input shapes {v.input_shapes} (exported at {v.export_input_shapes})",
             f"exporter: {v.exporter or 'n/a'}"]
    out = [table("Export validation (export_validation.json)",
                 ["Output", "max abs diff", "max rel diff", "within tolerance"], rows, notes)]
    if v.variants:
        out.append(table("Variants (FP16 / INT8) judged on target data",
                         ["Variant", "Status", "Accuracy fp32", "Accuracy variant", "Drop (pp)",
                          "Size vs fp32", "Speedup vs fp32", "Built as", "Reasons"],
                         [[cell(x.name), cell(x.status),
                           cell(fmt(x.accuracy_fp32, nd=4), "measured", x.method),
                           cell(fmt(x.accuracy_variant, nd=4), "measured", x.method),
                           cell(fmt(x.drop_pp), "measured", x.method),
                           cell(fmt(x.size_ratio), "static", "file sizes"),
                           cell(fmt(x.speedup_vs_fp32), "measured", "onnxruntime CPU, batch 1, interleaved"),
                           cell(x.build), cell("; ".join(x.reasons) or "-")] for x in v.variants]))
    return out


def manifest_table(rows: list[tuple[str, Any]]) -> Table:
    return table("Run manifest (summary)", ["Field", "Value"], [[cell(k), cell(str(v))] for k, v in rows])


COMPARISON_COLUMNS = ["Bundle", "Model", "Strategy", "Accuracy", "Trainable params", "Energy",
                      "CO2", "Energy vs scratch", "CO2 vs scratch", "Accuracy vs scratch",
                      "Source pretraining", "Energy incl. source pretraining"]


def comparison_table(rows_in: Sequence[Mapping[str, Any]]) -> Table:
    """Rows of :func:`hackforge_edge.energy.compare.compare_bundles`."""
    rows = []
    for r in rows_in:
        prov = r.get("provenance") or {}
        kind, method = r.get("energy_kind"), r.get("energy_method")
        vs = r.get("vs_scratch") or {}
        band = r.get("energy_band")
        pct = (lambda x: "n/a" if x is None else f"{x:+.1f} %")
        rows.append([
            cell(str(r["bundle"])), cell(str(r["model"])), cell(str(r["strategy"])),
            cell(fmt(r.get("accuracy"), nd=4), "measured", prov.get("accuracy")),
            cell(fmt(r.get("trainable_params")), "static", prov.get("trainable_params")),
            cell(fmt(r.get("energy_kwh"), "kWh") + _band_text(tuple(band) if band else None), kind, method),
            cell(fmt(r.get("co2_kg"), "kg"), kind, prov.get("co2_kg")),
            cell(pct(vs.get("energy_pct")) if vs else "-", kind if vs else None, method),
            cell(pct(vs.get("co2_pct")) if vs else "-", kind if vs else None, method),
            cell(f"{vs['accuracy_points']:+.2f} pts" if vs.get("accuracy_points") is not None else "-",
                 "measured" if vs.get("accuracy_points") is not None else None, prov.get("accuracy")),
            cell(str(r.get("source_pretrain", "n/a"))),
            cell(fmt(r.get("energy_kwh_incl_source"), "kWh"), kind, method),
        ])
    notes = sorted({f"{k}: {v}" for r in rows_in for k, v in (r.get("provenance") or {}).items()})
    baselines = sorted({(r.get("vs_scratch") or {}).get("baseline") for r in rows_in} - {None})
    if baselines:
        notes.append("vs scratch columns: change against the from-scratch bundle " + ", ".join(baselines))
    return table("Strategy comparison", COMPARISON_COLUMNS, rows, notes)
