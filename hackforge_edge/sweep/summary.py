"""results.csv (one row per finished cell) and summary.{json,md,html} with figures.

Per (model, arm, fraction): mean and 95 % t-interval over seeds of accuracy, F1, ROC-AUC,
training energy (kWh) and CO2 (kg), wall time, trainable parameters. Per arm other than
scratch: the paired comparison with scratch at each fraction (see :mod:`.stats`). Energy is
the target-domain training phase of each cell, with the meter's kind (measured/estimated) and
method carried into every table; a source model pretrained on a cache miss is a one-off
reported in its own column, not in the per-cell energy.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from typing import Any

from hackforge_edge.bundle import atomic_write_bytes, atomic_write_json, atomic_write_text, utc_now
from hackforge_edge.sweep.cells import SweepDir, arm, expand
from hackforge_edge.sweep.stats import INTERVAL_METHOD, PAIRED_METHOD, mean_ci, paired

CSV_COLUMNS = (
    "cell_id", "model", "strategy", "weights", "fraction", "seed", "status", "error",
    "train_images", "val_images", "test_images", "accuracy", "f1", "roc_auc", "sensitivity",
    "specificity", "test_loss", "best_val_accuracy", "best_epoch", "trainable_params",
    "total_params", "deployed_params", "adapter_params",
    # CodeCarbon's names and units: duration s, emissions kg CO2e, *_power W, *_energy kWh
    "duration", "emissions", "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy",
    "gpu_energy", "ram_energy", "energy_consumed", "region", "pue",
    "energy_kind", "energy_method", "energy_band_low", "energy_band_high", "source_cache_hit",
    "source_pretrain_energy_consumed", "wall_s", "threads", "host", "pid", "finished_at", "cell_hash",
)
STAT_KEYS = ("accuracy", "f1", "roc_auc", "energy_consumed", "emissions", "duration")


def write_results_csv(sd: SweepDir, spec) -> int:
    """Rebuild results.csv from the cell files (each grid cell at most once); return rows."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    n = 0
    for rec in sd.records(spec):
        w.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in CSV_COLUMNS})
        n += 1
    atomic_write_text(sd.root / "results.csv", buf.getvalue())
    return n


def summarise(records: list[dict[str, Any]], spec) -> dict[str, Any]:
    """The summary.json document from the cell records of ``spec``."""
    ok = [r for r in records if r.get("status") == "ok"]
    groups = []
    keys = list(dict.fromkeys((c.model, arm(c, spec), c.fraction) for c in expand(spec)))
    for model, a, frac in keys:
        sel = sorted((r for r in ok if r["model"] == model and arm(r, spec) == a and r["fraction"] == frac),
                     key=lambda r: r["seed"])
        failed = [r for r in records if r.get("status") == "failed" and r["model"] == model
                  and arm(r, spec) == a and r["fraction"] == frac]
        g = {"model": model, "arm": a, "fraction": frac, "seeds": [r["seed"] for r in sel],
             "n_failed": len(failed),
             "trainable_params": sorted({r["trainable_params"] for r in sel}) or None,
             "threads": sorted({r.get("threads") for r in sel if r.get("threads")})}
        g.update({k: mean_ci([r.get(k) for r in sel]) for k in STAT_KEYS})
        groups.append(g)
    comparisons = []
    if "scratch" in spec.strategies:
        for model, a, frac in keys:
            if a == "scratch":
                continue
            mine = {r["seed"]: r for r in ok if r["model"] == model and arm(r, spec) == a and r["fraction"] == frac}
            base = {r["seed"]: r for r in ok if r["model"] == model and r["strategy"] == "scratch"
                    and r["fraction"] == frac}
            seeds = sorted(set(mine) & set(base))
            comparisons.append({
                "model": model, "arm": a, "fraction": frac, "seeds": seeds,
                "accuracy": paired([mine[s]["accuracy"] for s in seeds], [base[s]["accuracy"] for s in seeds]),
                "energy_consumed": paired([mine[s]["energy_consumed"] for s in seeds],
                                          [base[s]["energy_consumed"] for s in seeds]),
            })
    kinds = sorted({r.get("energy_kind") for r in ok if r.get("energy_kind")})
    methods = sorted({r.get("energy_method") for r in ok if r.get("energy_method")})
    n_grid = len(expand(spec))
    return {
        "schema_version": 1, "written_at": utc_now(), "spec_hash": spec.result_hash(),
        "cells": {"grid": n_grid, "ok": len(ok), "failed": len(records) - len(ok),
                  "not_run": n_grid - len(records)},
        "interval_method": INTERVAL_METHOD, "paired_method": PAIRED_METHOD,
        "energy": {"kind": "/".join(kinds) or None, "methods": methods,
                   "scope": "target-domain training phase of each cell (train + test evaluation); "
                            "units kWh and kg CO2e as CodeCarbon writes them",
                   "source_pretrain_one_off_kwh": sum(r.get("source_pretrain_energy_consumed") or 0.0
                                                      for r in ok) or None},
        "groups": groups, "paired_vs_scratch": comparisons,
        "failed_cells": [{"cell_id": r["cell_id"], "error": r.get("error")}
                         for r in records if r.get("status") == "failed"],
    }


def _ci(s: dict[str, Any], fmt: str = "{:.3f}") -> str:
    if s.get("mean") is None:
        return "n/a"
    if s.get("lo") is None:
        return f"{fmt.format(s['mean'])} (n=1)"
    return f"{fmt.format(s['mean'])} [{fmt.format(s['lo'])}, {fmt.format(s['hi'])}]"


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def tables(doc: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(group header, group rows, paired header, paired rows) as strings."""
    gh = ["model", "arm", "fraction", "seeds", "accuracy [95% CI]", "F1 [95% CI]", "ROC-AUC [95% CI]",
          "energy kWh [95% CI]", "CO2 kg [95% CI]", "trainable params"]
    g = "{:.3g}"
    grows = [[x["model"], x["arm"], f"{x['fraction']:g}", str(len(x["seeds"])) + (f" ({x['n_failed']} failed)" if x["n_failed"] else ""),
              _ci(x["accuracy"]), _ci(x["f1"]), _ci(x["roc_auc"]), _ci(x["energy_consumed"], g),
              _ci(x["emissions"], g), ", ".join(f"{p:,}" for p in x["trainable_params"] or []) or "n/a"]
             for x in doc["groups"] if x["seeds"] or x["n_failed"]]  # cells not run yet: JSON only
    ph = ["model", "fraction", "arm - scratch", "pairs", "accuracy diff [95% CI]", "paired t p",
          "Wilcoxon p (min possible)", "verdict", "energy diff kWh [95% CI]"]
    prows = [[c["model"], f"{c['fraction']:g}", c["arm"], str(c["accuracy"]["n_pairs"]),
              _ci(c["accuracy"]["diff"], "{:+.3f}"), _p(c["accuracy"]["t_p"]),
              f"{_p(c['accuracy']['wilcoxon_p'])} ({_p(c['accuracy']['wilcoxon_min_p'])})",
              c["accuracy"]["verdict"], _ci(c["energy_consumed"]["diff"], "{:+.3g}")]
             for c in doc["paired_vs_scratch"] if c["accuracy"]["n_pairs"]]
    return gh, grows, ph, prows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _notes(doc: dict[str, Any]) -> list[str]:
    e, c = doc["energy"], doc["cells"]
    notes = [f"Cells: {c['ok']} ok, {c['failed']} failed, {c['not_run']} not run of {c['grid']}.",
             f"Intervals: {doc['interval_method']}; not clipped, so with few seeds an interval of a "
             "bounded metric (accuracy, F1, ROC-AUC in [0, 1]; energy >= 0) may extend past its bounds.",
             f"Paired comparison: {doc['paired_method']}.",
             "Accuracy, F1 and ROC-AUC: measured on each cell's held-out test split.",
             f"Energy: {e['kind'] or 'n/a'} ({', '.join(e['methods']) or 'n/a'}); {e['scope']}."]
    mixed = [f"{g['model']} {g['arm']} {g['fraction']:g}" for g in doc["groups"] if len(g.get("threads") or []) > 1]
    if mixed:
        notes.append("Energy of cells run with different torch thread counts is not comparable (an "
                     "estimate from CPU time counts spin-waiting threads): mixed in " + ", ".join(mixed) + ".")
    if e.get("source_pretrain_one_off_kwh"):
        notes.append(f"Source-model pretraining (one-off, cache misses inside this sweep): "
                     f"{e['source_pretrain_one_off_kwh']:.3g} kWh, not in the per-cell energy.")
    return notes


def render_md(doc: dict[str, Any]) -> str:
    gh, grows, ph, prows = tables(doc)
    parts = ["# Sweep summary", "", *[f"- {n}" for n in _notes(doc)], "", "## Per model, arm and fraction",
             "", _md_table(gh, grows), ""]
    if prows:
        parts += ["## Paired comparison with scratch (same seeds)", "", _md_table(ph, prows), ""]
    if doc["failed_cells"]:
        parts += ["## Failed cells", "", *[f"- {f['cell_id']}: {f['error']}" for f in doc["failed_cells"]], ""]
    return "\n".join(parts)


def render_html(doc: dict[str, Any], figures: dict[str, bytes]) -> str:
    def table(header, rows):
        th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    gh, grows, ph, prows = tables(doc)
    imgs = "".join(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
                   for name, png in figures.items())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes(doc))
    failed = "".join(f"<li>{html.escape(f['cell_id'])}: {html.escape(str(f['error']))}</li>"
                     for f in doc["failed_cells"])
    style = ("body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;"
             "font-size:13px;margin-bottom:20px}td,th{border:1px solid #ccc;padding:3px 7px}"
             "th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}figure{margin:12px 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep summary</title>"
            f"<style>{style}</style></head><body><h1>Sweep summary</h1><ul>{notes}</ul>{imgs}"
            f"<h2>Per model, arm and fraction</h2>{table(gh, grows)}"
            + (f"<h2>Paired comparison with scratch (same seeds)</h2>{table(ph, prows)}" if prows else "")
            + (f"<h2>Failed cells</h2><ul>{failed}</ul>" if failed else "") + "</body></html>\n")


def write_summary(sd: SweepDir, spec) -> dict[str, Any]:
    """summary.json/md/html and figures/*.png from the finished cells; returns the JSON doc."""
    from hackforge_edge.sweep import figures as figs

    doc = summarise(list(sd.records(spec)), spec)
    pngs = {}
    a = figs.accuracy_vs_fraction(doc["groups"], spec.models)
    if a:
        pngs["accuracy_vs_fraction"] = a
    b = figs.accuracy_vs_energy(doc["groups"], doc["energy"]["kind"] or "energy")
    if b:
        pngs["accuracy_vs_energy"] = b
    for name, png in pngs.items():
        atomic_write_bytes(sd.root / "figures" / f"{name}.png", png)
    doc["figures"] = [f"figures/{n}.png" for n in pngs]
    atomic_write_json(sd.root / "summary.json", doc)
    atomic_write_text(sd.root / "summary.md", render_md(doc))
    atomic_write_text(sd.root / "summary.html", render_html(doc, pngs))
    return doc
