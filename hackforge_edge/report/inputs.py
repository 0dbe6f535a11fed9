"""What a report reads from a bundle, and the one place that knows the shape of the files it does
not own (metrics.json, training_carbon.json, export_validation.json, manifest.json).

``profile.json`` and ``feasibility.json`` are read as their typed models. The other files are
read here into small views with the fields the report shows; when those files get their own
typed models, only the ``*_view`` functions below change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError
from hackforge_edge.feasibility.artifact import Feasibility
from hackforge_edge.profiling.artifact import Profile

METRICS, TRAINING_CARBON, EXPORT_VALIDATION = "metrics.json", "training_carbon.json", "export_validation.json"


# ---- views of the files this package does not own ----------------------------------------------
@dataclass(frozen=True)
class QualityView:
    """metrics.json: scalar metrics, per-class values and the confusion matrix."""

    kind: str
    method: str
    scalars: list[tuple[str, Any]]
    per_class: dict[str, dict[str, Any]]
    confusion_matrix: list[list[int]] | None
    class_names: list[str]


QUALITY_SCALARS = ("accuracy", "f1", "sensitivity", "specificity", "roc_auc", "loss", "n",
                   "positive_class", "average", "split")
PER_CLASS_FIELDS = ("sensitivity", "specificity", "precision", "f1", "roc_auc", "support")


def quality_view(metrics: dict[str, Any]) -> QualityView:
    return QualityView(
        kind=metrics.get("kind", "measured"),
        method=metrics.get("method") or "evaluated on the held-out target-domain test split",
        scalars=[(k, metrics[k]) for k in QUALITY_SCALARS if k in metrics],
        per_class=dict(metrics.get("per_class") or {}),
        confusion_matrix=metrics.get("confusion_matrix"),
        class_names=[str(c) for c in metrics.get("class_names") or []])


@dataclass(frozen=True)
class CarbonPhaseView:
    phase: str
    duration_s: float | None
    energy_j: float | None
    energy_kwh: float | None
    co2_kg: float | None
    kind: str
    method: str
    band: tuple[float, float] | None


@dataclass(frozen=True)
class CarbonView:
    """training_carbon.json: phases, totals, the grid and notes on what was reused."""

    kind: str
    phases: list[CarbonPhaseView]
    totals: dict[str, Any]
    grid: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def carbon_view(tc: dict[str, Any]) -> CarbonView:
    phases = [CarbonPhaseView(phase=p["phase"], duration_s=p.get("duration_s"), energy_j=p.get("energy_j"),
                              energy_kwh=p.get("energy_kwh"), co2_kg=p.get("co2_kg"), kind=p["kind"],
                              method=p["method"], band=tuple(p["band"]) if p.get("band") else None)
              for p in tc.get("phases") or []]
    notes = []
    if tc.get("tdp_source"):
        notes.append("TDP: " + "; ".join(f"{s['tdp_w']} W ({s.get('origin') or 'origin n/a'})"
                                          for s in tc["tdp_source"]))
    one_off = tc.get("source_pretrain_one_off")
    if one_off and one_off.get("energy_j") is not None:
        notes.append(f"source model pretraining reused from the cache: {one_off['energy_j']:.4g} J "
                     f"({one_off.get('kind', 'n/a')}, {one_off.get('method', 'n/a')}), spent once in "
                     "an earlier run and not in these totals")
    if tc.get("formula"):
        notes.append(f"formula: {tc['formula']}")
    return CarbonView(kind=tc.get("kind", "n/a"), phases=phases, totals=dict(tc.get("totals") or {}),
                      grid=dict(tc.get("grid") or {}), notes=notes)


@dataclass(frozen=True)
class OutputCheckView:
    name: str
    max_abs_diff: float | None
    max_rel_diff: float | None
    passed: bool


@dataclass(frozen=True)
class VariantView:
    name: str
    status: str
    accuracy_fp32: float | None
    accuracy_variant: float | None
    drop_pp: float | None
    size_ratio: float | None
    speedup_vs_fp32: float | None
    reasons: list[str]
    method: str | None
    build: str = "n/a"          # how it was built: format, target engine, calibration samples


def _build_text(build: dict) -> str:
    st = build.get("settings") or {}
    if "activation_type" in st:
        text = (f"{st.get('quant_format', '')} {st['activation_type']} activations / "
                f"{st.get('weight_type', '?')} weights" + (" per channel" if st.get("per_channel") else "")
                + (f", for {st['engine']}" if st.get("engine") else ""))
        n = build.get("calibration_samples", st.get("calibration_samples"))
        return text + (f"; {st.get('calibrate_method', 'MinMax')} calibration on {n} samples" if n else "")
    return str(build.get("method") or "n/a")


@dataclass(frozen=True)
class ValidationView:
    """export_validation.json: ONNX Runtime vs PyTorch per output, and the FP16/INT8 variants."""

    method: str
    passed: bool
    atol: float
    rtol: float
    input_shapes: dict[str, Any]
    export_input_shapes: dict[str, Any] | None
    exporter: str | None
    outputs: list[OutputCheckView]
    variants: list[VariantView]


def validation_view(ev: dict[str, Any]) -> ValidationView:
    outputs = [OutputCheckView(name=name, max_abs_diff=o.get("max_abs_diff"),
                               max_rel_diff=o.get("max_rel_diff"), passed=bool(o.get("passed")))
               for name, o in (ev.get("outputs") or {}).items()]
    variants = []
    for name, v in (ev.get("variants") or {}).items():
        judged = v.get("validation") or {}
        acc, lat = judged.get("accuracy") or {}, judged.get("latency") or {}
        variants.append(VariantView(name=name, status=judged.get("status", "n/a"),
                                    accuracy_fp32=acc.get("fp32"), accuracy_variant=acc.get("variant"),
                                    drop_pp=acc.get("drop_pp"), size_ratio=judged.get("size_ratio"),
                                    speedup_vs_fp32=lat.get("speedup_vs_fp32"),
                                    reasons=list(judged.get("reasons") or []), method=acc.get("method"),
                                    build=_build_text(v.get("build") or {})))
    export = ev.get("export") or {}
    return ValidationView(method=ev.get("method", "ONNX Runtime vs PyTorch outputs on the same inputs"),
                          passed=bool(ev.get("passed")), atol=ev["atol"], rtol=ev["rtol"],
                          input_shapes=ev.get("input_shapes") or {},
                          export_input_shapes=ev.get("export_input_shapes"),
                          exporter=export.get("exporter"), outputs=outputs, variants=variants)


def manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    """manifest.json: the run's name, times, seed, model, strategy and versions."""
    cfg = manifest.get("config") or {}
    versions = manifest.get("versions") or {}
    rows = [("name", manifest.get("name")), ("started_at", manifest.get("started_at")),
            ("finished_at", manifest.get("finished_at")), ("seed", manifest.get("seed")),
            ("model", cfg.get("model")), ("strategy", cfg.get("strategy")),
            ("artifacts", len(manifest.get("artifacts") or {})),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v))]
    return [(k, v) for k, v in rows if v not in (None, "")]


# ---- the inputs of a report ---------------------------------------------------------------------
@dataclass
class ReportInputs:
    """Everything a report is built from; the optional files are None when the bundle lacks them."""

    profile: Profile
    feasibility: Feasibility | None
    quality: QualityView | None = None
    carbon: CarbonView | None = None
    validation: ValidationView | None = None
    manifest: list[tuple[str, Any]] | None = None
    run_name: str | None = None


def read_report_inputs(bundle_dir: str | os.PathLike, *, profile: Profile | None = None,
                       feasibility: Feasibility | None = None) -> ReportInputs:
    """The typed profile and feasibility (given, or read from the bundle) and views of the
    other files the bundle holds. Needs profile.json."""
    d = Path(bundle_dir)
    if profile is None:
        if not d.is_dir():
            raise BundleError(f"{d}: not a directory (expected a run bundle)")
        if not (d / bundle.MODEL).is_file() and not (d / Profile.FILENAME).is_file():
            raise BundleError(f"{d}: not a run bundle (no {bundle.MODEL} or {Profile.FILENAME}); "
                              "make one with `hf-edge train-and-export` or profile a model with "
                              "`hf-edge profile MODEL.onnx --out DIR`")
        if not (d / Profile.FILENAME).is_file():
            raise BundleError(f"{d}: no {Profile.FILENAME} in the bundle; run `hf-edge profile {d}` first")
        profile = Profile.read(d)
    if feasibility is None and (d / Feasibility.FILENAME).is_file():
        feasibility = Feasibility.read(d)
    manifest = _json_if_present(d / bundle.MANIFEST)
    metrics, tc, ev = (_json_if_present(d / n) for n in (METRICS, TRAINING_CARBON, EXPORT_VALIDATION))
    return ReportInputs(
        profile=profile, feasibility=feasibility,
        quality=quality_view(metrics) if metrics else None,
        carbon=carbon_view(tc) if tc else None,
        validation=validation_view(ev) if ev else None,
        manifest=manifest_rows(manifest) if manifest else None,
        run_name=manifest.get("name") if manifest else None)


def _json_if_present(path: Path) -> Any | None:
    return bundle.read_json(path) if path.is_file() else None
