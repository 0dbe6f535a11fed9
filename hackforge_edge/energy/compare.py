"""Compare transfer strategies across run bundles: accuracy, trainable parameters, training
energy and CO2, and the change against the from-scratch bundle when one is given.

Each bundle is opened through ``Bundle.open`` (complete, every file matching its manifest) and
must hold manifest.json (``config.strategy``, ``config.model``, top-level ``params``),
metrics.json and training_carbon.json. Every number in a row carries how it was obtained
(``provenance``): metrics are measured on the target test split, parameters are counted, energy
and CO2 carry the meter's kind and method and the grid used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

from hackforge_edge.bundle import Bundle
from hackforge_edge.energy.meter import J_PER_KWH
from hackforge_edge.errors import BundleError

SCRATCH_STRATEGIES = ("scratch", "from_scratch", "from-scratch")
A = TypeVar("A")


def _need(b: Bundle, cls: type[A]) -> A:
    if not b.has(cls.FILENAME):
        raise BundleError(f"bundle {b.dir}: missing {cls.FILENAME}")
    return b.read(cls)


def _bundle_row(path: Path, allow_incomplete: bool = False) -> dict[str, Any]:
    from hackforge_edge.energy.artifact import TrainingCarbon
    from hackforge_edge.training.artifacts import Metrics

    b = Bundle.open(path, allow_incomplete=allow_incomplete)
    manifest = b.manifest
    if manifest is None:
        raise BundleError(f"bundle {path}: no readable manifest.json (compare needs its config and params)")
    metrics, carbon = _need(b, Metrics), _need(b, TrainingCarbon)
    model, strategy = manifest.config.get("model"), manifest.config.get("strategy")
    if manifest.params is None or model is None or strategy is None:
        raise BundleError(f"bundle {path}: manifest.json has no params or config.model/strategy")
    totals, grid = carbon.totals, carbon.grid
    kind = carbon.kind
    methods = "+".join(carbon.methods) or "unknown"
    grid_txt = (f"{grid.region} {grid.intensity_g_per_kwh:g} g/kWh ({grid.basis}, {grid.year}), "
                f"PUE {grid.pue:g}")
    source = carbon.phase("source_pretrain")
    source_pretrain = ("none" if source is None else
                       "cache hit (not counted)" if source.kind == "cache-hit" else "counted")
    one_off = carbon.source_pretrain_one_off
    one_off_kwh = one_off.energy_j / J_PER_KWH if one_off and one_off.energy_j is not None else None
    energy_kwh = totals.energy_kwh
    retention = metrics.source_retention or {}
    # progressive unfreezing changes the count per epoch: the most that trained in any epoch
    per_epoch = [h.get("trainable_params") for h in (manifest.training or {}).get("history") or []
                 if isinstance(h, dict) and h.get("trainable_params") is not None]
    with_source = (energy_kwh + one_off_kwh if one_off_kwh is not None
                   else energy_kwh if source_pretrain != "cache hit (not counted)" else None)
    return {
        "bundle": path.name,
        "path": str(path),
        "model": model,
        "strategy": strategy,
        "accuracy": metrics.accuracy,
        "f1": metrics.f1,
        "roc_auc": metrics.roc_auc,
        "trainable_params": max(per_epoch) if per_epoch else manifest.params.trainable_params,
        # forgetting: source-domain test accuracy of the source model (before) and of the
        # transferred model (after); None where the run had no source data
        "source_accuracy_before": retention.get("accuracy_before"),
        "source_accuracy_after": retention.get("accuracy_after"),
        "source_retention": retention.get("retention"),
        "total_params": manifest.params.total_params,
        "energy_kwh": energy_kwh,
        "co2_kg": totals.co2_kg,
        "energy_complete": totals.complete,
        "energy_kind": kind,
        "energy_method": methods,
        "energy_band": list(totals.band) if totals.band else None,
        # a cached source model makes a transfer run look cheaper than the first one was
        "source_pretrain": source_pretrain,
        # this run's energy plus the one-off source pretraining it reused (from the cache entry,
        # metered in the run that made it); None when that cost was not recorded
        "energy_kwh_incl_source": with_source,
        "provenance": {
            "accuracy": "measured (metrics.json, target-domain test split)",
            "f1": "measured (metrics.json)",
            "roc_auc": "measured (metrics.json)",
            "trainable_params": "counted (manifest.json params; the largest per-epoch count when "
                                "training.history has one)",
            "source_accuracy_before": "measured (metrics.json source_retention: the source model "
                                      "on the source-domain test split)",
            "source_accuracy_after": "measured (metrics.json source_retention: the transferred "
                                     "model on the source-domain test split)",
            "source_retention": "ratio after / before (metrics.json source_retention)",
            "energy_kwh": f"{kind} ({methods})" + ("" if totals.complete else ", incomplete: lower bound"),
            "co2_kg": f"{kind} ({methods}; {grid_txt})",
        },
    }


def _delta(value: Any, base: Any) -> tuple[float | None, float | None]:
    if value is None or base is None:
        return None, None
    d = float(value) - float(base)
    return d, (100.0 * d / float(base) if float(base) != 0 else None)


def compare_bundles(paths: Iterable[str | os.PathLike], *, allow_incomplete: bool = False) -> list[dict[str, Any]]:
    """One row per bundle (in the given order). When a from-scratch bundle is present (same model
    preferred), each row gets ``vs_scratch``: absolute and % change of energy, CO2 and trainable
    parameters, and the accuracy change in points."""
    rows = [_bundle_row(Path(p), allow_incomplete) for p in paths]
    if not rows:
        raise BundleError("no bundles to compare")
    scratch = [r for r in rows if str(r["strategy"]).lower() in SCRATCH_STRATEGIES]
    for r in rows:
        base = next((s for s in scratch if s["model"] == r["model"]), scratch[0] if scratch else None)
        if base is None:
            r["vs_scratch"] = None
            continue
        e_abs, e_pct = _delta(r["energy_kwh"], base["energy_kwh"])
        c_abs, c_pct = _delta(r["co2_kg"], base["co2_kg"])
        p_abs, p_pct = _delta(r["trainable_params"], base["trainable_params"])
        a_abs, _ = _delta(r["accuracy"], base["accuracy"])
        r["vs_scratch"] = {
            "baseline": base["bundle"],
            "energy_kwh": e_abs, "energy_pct": e_pct, "co2_kg": c_abs, "co2_pct": c_pct,
            "trainable_params": p_abs, "trainable_params_pct": p_pct,
            "accuracy_points": None if a_abs is None else 100.0 * a_abs,
            "kinds": f"{r['energy_kind']} vs {base['energy_kind']}",
        }
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def _cells(r: dict[str, Any]) -> list[str]:
    vs = r.get("vs_scratch") or {}
    band = r.get("energy_band")
    band_txt = f" [{band[0]:+.0%}/{band[1]:+.0%}]" if band else ""
    return [
        r["bundle"], str(r["model"]), str(r["strategy"]), _fmt(r["accuracy"], ".4f"),
        _fmt(r["trainable_params"], ","),
        _fmt(r.get("source_accuracy_before"), ".4f"), _fmt(r.get("source_accuracy_after"), ".4f"),
        _fmt(r.get("source_retention"), ".3f"),
        _fmt(r["energy_kwh"], ".3g") + band_txt,
        _fmt(r["co2_kg"], ".3g"), _pct(vs.get("energy_pct")) if vs else "-",
        _pct(vs.get("co2_pct")) if vs else "-",
        _fmt(vs.get("accuracy_points"), "+.2f") if vs else "-",
        f"{r['energy_kind']} ({r['energy_method']})", r.get("source_pretrain", "n/a"),
        _fmt(r.get("energy_kwh_incl_source"), ".3g"),
    ]


HEADERS = ["bundle", "model", "strategy", "accuracy", "trainable", "source acc before",
           "source acc after", "source retention", "kWh", "CO2 kg",
           "kWh vs scratch", "CO2 vs scratch", "acc vs scratch (pts)", "energy kind (method)",
           "source pretraining", "kWh incl. source pretraining"]


def render_comparison_table(rows: list[dict[str, Any]]):
    """A Rich Table of the rows (import Rich only when rendering)."""
    from rich.table import Table

    table = Table(title="Transfer strategies: accuracy vs training energy and CO2")
    for h in HEADERS:
        left = h in ("bundle", "model", "strategy", "energy kind (method)", "source pretraining")
        table.add_column(h, justify="left" if left else "right", overflow="fold")
    for r in rows:
        table.add_row(*_cells(r))
    table.caption = _caption(rows)
    return table


def _caption(rows: list[dict[str, Any]]) -> str:
    grids = sorted({r["provenance"]["co2_kg"].split("; ", 1)[-1].rstrip(")") for r in rows})
    kinds = sorted({r["energy_kind"] for r in rows})
    parts = [f"energy kinds: {', '.join(kinds)}", f"grid: {' | '.join(grids)}",
             "accuracy measured on the target test split; params counted",
             "source acc: measured on the source-domain test split, before = the source model, "
             "after = the transferred model, retention = after / before (n/a: no source data)"]
    if any(not r.get("energy_complete", True) for r in rows):
        parts.append("some energy totals are incomplete (lower bounds)")
    if any(r.get("source_pretrain") == "cache hit (not counted)" for r in rows):
        parts.append("source pretraining 'cache hit': the one-off energy of pretraining the source "
                     "model was spent in an earlier run and is not in that row's total")
    if len(kinds) > 1 or "measured" not in kinds:
        parts.append("estimated energy carries the band shown in brackets")
    return "; ".join(parts)


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    """The same table as GitHub-flavoured Markdown, with the provenance line under it."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    lines += ["", f"_{_caption(rows)}_", ""]
    return "\n".join(lines)
