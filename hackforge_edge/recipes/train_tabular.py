"""``train-and-export --task tabular``: table -> transfer strategy (metered) -> skl2onnx export
-> validation against scikit-learn -> profile -> feasibility -> report -> manifest.

The same bundle as for images (manifest written last, every reader verifies it); the model is a
scikit-learn pipeline (standardisation + linear/logistic model), and ``preprocess.json``
records the feature names, order and units that the server maps JSON rows onto.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hackforge_edge import bundle
from hackforge_edge.errors import UsageError
from hackforge_edge.recipes.profile import DEFAULT_PROFILES

DEFAULT_DATA = "sklearn:breast_cancer"


@dataclass
class TabularConfig:
    """Everything a tabular run needs, resolved; recorded in the manifest."""

    data: str = DEFAULT_DATA
    source_data: str | None = None
    target_column: str | None = None
    problem: str | None = None
    strategy: str = "bayesian"
    data_fraction: float = 1.0
    seed: int = 0
    cv_folds: int | None = None
    profiles: tuple[str, ...] = DEFAULT_PROFILES
    skip_profile: bool = False
    requirements: dict[str, Any] = field(default_factory=dict)
    requirements_file: str | None = None
    region: str | None = None
    grid_intensity: float | None = None
    pue: float | None = None
    tdp_w: float | None = None
    out: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        from hackforge_edge.tabular.strategies import TABULAR_STRATEGIES

        if self.strategy not in TABULAR_STRATEGIES:
            raise UsageError(f"unknown tabular strategy {self.strategy!r} "
                             f"(valid: {', '.join(TABULAR_STRATEGIES)})")
        if not 0 < self.data_fraction <= 1:
            raise UsageError(f"--data-fraction must be in (0, 1], got {self.data_fraction}")

    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out)
        name = self.data.split(":")[-1] if self.data.startswith("sklearn:") else Path(self.data).stem
        return Path("runs") / f"tabular-{name}-{self.strategy}-{time.strftime('%Y%m%d-%H%M%S')}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["profiles"] = list(self.profiles)
        d["task"] = "tabular"
        return d


def run(cfg: TabularConfig, say: Callable[[str], None] = print) -> Path:
    """Fit, export, validate, profile, report; return the complete bundle directory."""
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.feasibility.requirements import load_requirements
    from hackforge_edge.tabular.data import load_task
    from hackforge_edge.tabular.strategies import cv_folds

    req = load_requirements(cfg.requirements_file, region=cfg.region,
                            grid_intensity_g_per_kwh=cfg.grid_intensity, pue=cfg.pue, **cfg.requirements)
    grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
    if not cfg.skip_profile:
        from hackforge_edge.profiling.preflight import check_profiles

        check_profiles(list(cfg.profiles))
    task = load_task(cfg.data, source_data=cfg.source_data, target_column=cfg.target_column,
                     problem=cfg.problem, seed=cfg.seed, data_fraction=cfg.data_fraction)
    cv_folds(task, cfg.cv_folds)          # too few rows for the folds: one line, nothing written
    out = bundle.prepare_out_dir(cfg.resolved_out(), overwrite=cfg.overwrite)
    started_at = bundle.utc_now()
    say(f"bundle: {out}")
    say(f"data: {task.name} ({task.problem}), {len(task.source.y)} source rows, "
        f"{len(task.train.y)} target train / {len(task.test.y)} test rows, {len(task.feature_names)} features")
    return _execute(cfg, task, out, started_at, req, grid, say)


def _execute(cfg: TabularConfig, task, out: Path, started_at: str, req, grid, say) -> Path:
    from hackforge_edge.energy.accounting import PhaseLog, write_training_carbon
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.export.artifact import ExportValidation
    from hackforge_edge.tabular.export import export_pipeline, validate_pipeline
    from hackforge_edge.tabular.strategies import fit_strategy

    meter = make_meter("cpu", tdp_w=cfg.tdp_w)
    phases = PhaseLog(meter)
    with phases.phase("target_transfer"):   # the source fit is part of every transfer strategy
        fit = fit_strategy(task, cfg.strategy, seed=cfg.seed, cv=cfg.cv_folds)
    metrics = tabular_metrics(task, fit)
    metrics.write(out)
    say(f"strategy {cfg.strategy}: chosen {_short(fit.chosen)}; " + _metric_line(metrics))

    with phases.phase("export"):
        info = export_pipeline(fit.pipeline, len(task.feature_names), out / bundle.MODEL, task.problem)
    with phases.phase("validation"):
        checked = ExportValidation(export=info, **validate_pipeline(fit.pipeline, out / bundle.MODEL,
                                                                    task.test.X, task.problem))
    checked.write(out)
    say(f"export: skl2onnx, {info['node_count']} nodes; vs scikit-learn max abs diff "
        f"{checked.worst_abs_diff:.2e} ({'within' if checked.passed else 'OUTSIDE'} atol {checked.atol:g} + rtol {checked.rtol:g} x |value|)")
    if task.class_names:
        bundle.atomic_write_json(out / bundle.LABELS, list(task.class_names))
    bundle.atomic_write_json(out / bundle.PREPROCESS, feature_spec(task))

    profile_result = None
    if not cfg.skip_profile:
        from hackforge_edge.recipes.profile import run_profile

        with phases.phase("profiling"):
            in_progress = bundle.ModelRef(out / bundle.MODEL, bundle.Bundle.in_progress(out))
            profile_result = run_profile(in_progress, cfg.profiles, req, meter=meter, report=False,
                                         batch_sizes=(1, 64))
    carbon = write_training_carbon(out, phases, grid, extra={
        "tdp_w": cfg.tdp_w, "meter_skipped": getattr(meter, "skipped", None)})
    say(f"training energy: {carbon.totals.energy_kwh:.3g} kWh ({carbon.kind}), far below any meter's "
        "resolution for one fit: benchmarks/tabular_transfer.py meters repeated fits")
    if profile_result is not None:
        from hackforge_edge.report.build import build_report

        build_report(out, profile=profile_result.profile, feasibility=profile_result.feasibility)
    bundle.write_manifest(out, config=cfg.to_json(), seed=cfg.seed, started_at=started_at, extra={
        "exporter": "skl2onnx",
        "params": {"strategy": cfg.strategy, "total_params": _n_params(fit.pipeline),
                   "trainable_params": _n_params(fit.pipeline)},
        "weights": {"kind": "source" if cfg.strategy not in ("scratch", "statmap") else "none"},
        "training": {"chosen": fit.chosen, "iterations_on_target": fit.iterations},
        "data": task.description,
    })
    say(f"done: {out / bundle.MANIFEST}")
    return out


def feature_spec(task) -> dict[str, Any]:
    """preprocess.json for a table: the feature order the model expects, with units."""
    return {"kind": "tabular", "input_name": "input", "dtype": "float32", "problem": task.problem,
            "features": [{"name": n, "unit": task.units.get(n, "")} for n in task.feature_names],
            "class_names": task.class_names, "standardised_in_model": True}


def tabular_metrics(task, fit):
    """metrics.json on the held-out target rows (and predictive uncertainty for ``bayesian``)."""
    from hackforge_edge.training.artifacts import Metrics

    method = "scikit-learn pipeline on the held-out target rows"
    X, y = task.test.X, task.test.y
    predictive = None
    if task.problem == "classification":
        from hackforge_edge.training.metrics import classification_metrics

        probs = fit.pipeline.predict_proba(X)
        m = classification_metrics(y, probs, class_names=task.class_names)
        if fit.predictive is not None:
            moderated, std = fit.predictive(X)
            predictive = {"method": "Laplace posterior, probit-moderated probabilities (MacKay 1992)",
                          "mean_logit_std": float(std.mean()),
                          "log_loss_moderated": float(-np.log(np.clip(moderated[np.arange(len(y)), y], 1e-12, 1)).mean())}
        return Metrics(**m, problem="classification", split="test", n_images=len(y), method=method,
                       predictive=predictive)
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    pred = fit.pipeline.predict(X)
    if fit.predictive is not None:
        mean, std = fit.predictive(X)
        inside = np.abs(y - mean) <= 1.96 * std
        predictive = {"method": "conjugate Gaussian posterior predictive (noise + parameter variance)",
                      "mean_std": float(std.mean()), "coverage_95": float(inside.mean())}
    reg = {"r2": float(r2_score(y, pred)), "rmse": float(np.sqrt(mean_squared_error(y, pred))),
           "mae": float(mean_absolute_error(y, pred))}
    return Metrics(n=len(y), problem="regression", regression=reg, split="test", n_images=len(y),
                   method=method, predictive=predictive)


def _n_params(pipeline) -> int:
    model = pipeline.steps[-1][1]
    return int(np.size(model.coef_) + np.size(model.intercept_))


def _short(chosen: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in chosen.items() if k != "source")


def _metric_line(m) -> str:
    if m.problem == "regression":
        return f"target test R^2 {m.regression.r2:.3f}, RMSE {m.regression.rmse:.3g}"
    auc = "n/a" if m.roc_auc is None else f"{m.roc_auc:.3f}"
    return f"target test accuracy {m.accuracy:.3f}, ROC-AUC {auc}"
