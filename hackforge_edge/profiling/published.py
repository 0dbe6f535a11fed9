"""Calibration of the shipped device profiles from published latency measurements.

Two data files ship in ``profiling/published_results/``:

- ``measurements.yaml``: published latencies (or throughputs) of models run on a target, one
  record per table row, each with its source URL, dates and a verbatim excerpt of the row
  (:class:`PublishedRecord`). ResNet-50 and BERT results are refused here: they are kept
  outside the package (``benchmarks/published_check.yaml``) and only check the fitted
  projections.
- ``features.json``: per model, the static-analysis features (per-kernel FLOPs and bytes after
  each engine's fusions) of its ONNX graph built here with random weights, with the package
  versions that built it (``benchmarks/published_features.py`` rebuilds it), so the fit needs
  neither torch nor ultralytics.

:func:`calibrate_profile` fits a profile's engine efficiencies to its records with
:func:`~hackforge_edge.profiling.calibrate.fit` (each point projected at its own precision's
peak) and takes the error band from the leave-one-model-out residuals: the fit on the other
models predicts the held-out one. ``benchmarks/published_calibration.py --write`` writes the
result into the profile YAMLs.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hackforge_edge.errors import ProfileError

FEATURES_FILE = "hackforge_edge/profiling/published_results/features.json"      # relative to the repo
CHECK_FEATURES_FILE = "benchmarks/published_check_features.json"
CHECK_FILE = "benchmarks/published_check.yaml"
MEASUREMENTS = "measurements.yaml"
ENGINES = ("tensorrt", "ort-cpu")
# never fitted on: they are the models the projections are checked against
EXCLUDED_FROM_FIT = re.compile(r"resnet-?50|bert", re.IGNORECASE)
MIN_MODELS = 3                   # fewer distinct models: no leave-one-model-out, profile stays a prior
BAND_FLOOR_LOG = math.log(1.10)
# a fit on one model family (e.g. only YOLO11 sizes) says little about other architectures: its
# leave-one-model-out band is widened by this factor each side (as calibrate.PRIOR_WIDEN does
# for a fit transferred to another device)
SINGLE_FAMILY_WIDEN = 2.0


def model_family(model: str) -> str:
    """Architecture family of a model key: the size letter of YOLO names dropped
    (yolo11s -> yolo11, yolo11s-cls -> yolo11-cls); other names are their own family."""
    return re.sub(r"^(yolo(?:11|v8))[nsmlx]", r"\1", model)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublishedRecord(_Strict):
    """One published measurement: a row of a table on a public page."""

    profile: str = Field(description="shipped profile name the device corresponds to")
    device: str = Field(min_length=3, description="the device as the source names it")
    model: str = Field(min_length=2, description="key into features.json")
    input_size: int = Field(ge=0, description="image side in pixels (0: text model)")
    seq_len: int | None = None
    batch: int = Field(ge=1)
    precision: Literal["fp32", "fp16", "int8"]
    precision_stated: bool = Field(description="false: the source does not say; see note")
    engine: str = Field(min_length=3, description="engine and version as published")
    power_mode: str = Field(min_length=2, description="as published, or 'not stated ...'")
    profile_mode: str | None = Field(default=None, description="profile mode it is fitted in (default mode if null)")
    latency_ms: float | None = Field(default=None, gt=0)
    throughput_per_s: float | None = Field(default=None, gt=0)
    metric: str = Field(min_length=5, description="what the published figure measures")
    source_url: str = Field(pattern=r"^https?://")
    source_text: str = Field(min_length=5, description="where the row was read (file and commit)")
    published: str = Field(min_length=4, description="publication date or tool version that dates it")
    retrieved: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    excerpt: str = Field(min_length=10, description="the table row, verbatim")
    note: str | None = None

    @model_validator(mode="after")
    def _one_figure(self):
        if (self.latency_ms is None) == (self.throughput_per_s is None):
            raise ValueError("give exactly one of latency_ms and throughput_per_s")
        return self

    @property
    def latency_s(self) -> float:
        """Latency of one call at ``batch`` in seconds (throughput converted at that batch)."""
        if self.latency_ms is not None:
            return self.latency_ms / 1e3
        return self.batch / self.throughput_per_s


class PublishedSet(_Strict):
    schema_version: int = 1
    description: str | None = None
    records: list[PublishedRecord] = Field(min_length=1)


def _read_set(text: str, where: str, *, fitting: bool) -> PublishedSet:
    try:
        data = yaml.safe_load(text)
        out = PublishedSet.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"{where}: invalid published measurements: {exc}") from None
    if fitting:
        bad = [r.model for r in out.records if EXCLUDED_FROM_FIT.search(r.model)]
        if bad:
            raise ProfileError(f"{where}: ResNet-50/BERT results may not be fitted on: {bad}")
    return out


def load_published(path: str | Path | None = None) -> PublishedSet:
    """The fitting set (shipped ``measurements.yaml`` unless ``path``)."""
    if path is None:
        entry = resources.files("hackforge_edge.profiling").joinpath("published_results", MEASUREMENTS)
        return _read_set(entry.read_text(encoding="utf-8"), f"published_results/{MEASUREMENTS}", fitting=True)
    return _read_set(Path(path).read_text(encoding="utf-8"), str(path), fitting=True)


def load_check_set(path: str | Path) -> PublishedSet:
    """A check set (ResNet-50/BERT allowed; never fitted)."""
    return _read_set(Path(path).read_text(encoding="utf-8"), str(path), fitting=False)


def load_features(path: str | Path | None = None) -> dict[str, dict]:
    """model name -> features record (see :func:`features_record`)."""
    if path is None:
        text = resources.files("hackforge_edge.profiling").joinpath(
            "published_results", "features.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return json.loads(text)["models"]


# ---- features --------------------------------------------------------------------------------
def features_record(static, *, input_size: int, seq_len: int | None, built_by: str) -> dict:
    """Per-engine kernel lists of ``static`` (fp32 bytes, no cache split) as a JSON-able dict."""
    from hackforge_edge.profiling.project import layer_features

    rec: dict[str, Any] = {"built_by": built_by, "input_size": input_size, "seq_len": seq_len,
                           "batch": static.batch, "gflops": static.flops / 1e9,
                           "params": int(sum(layer.params for layer in static.layers)),
                           "uncosted_ops": dict(static.uncosted_ops), "engines": {}}
    for engine in ENGINES:
        f = layer_features(static, engine, "fp32", cache_bytes=None)
        rec["engines"][engine] = {
            "flops": [round(x) for x in f.flops], "bytes": [round(x) for x in f.bytes],
            "depthwise": [int(x) for x in f.depthwise], "compute": [int(x) for x in f.compute],
            "n_fused": f.n_fused}
    return rec


def features_for(record: dict, engine: str, precision: str, cache_bytes: float | None):
    """:class:`~hackforge_edge.profiling.project.Features` of a stored record, as
    ``layer_features`` would give them at ``precision`` (bytes scaled) and cache size."""
    from hackforge_edge.profiling.project import BYTES_SCALE, Features

    if engine not in record["engines"]:
        raise ProfileError(f"no stored features for engine {engine!r}")
    e = record["engines"][engine]
    scale = BYTES_SCALE[precision]
    byts = [float(q) * scale for q in e["bytes"]]
    return Features(flops=[float(x) for x in e["flops"]], bytes=byts,
                    depthwise=[bool(x) for x in e["depthwise"]],
                    compute=[bool(x) for x in e["compute"]], n_kernels=len(byts),
                    n_fused=e["n_fused"],
                    resident=[bool(cache_bytes) and q <= cache_bytes for q in byts])


# ---- fitting -------------------------------------------------------------------------------
def points_for(profile, records, features: dict[str, dict]):
    """:class:`~hackforge_edge.profiling.calibrate.Point` per record of ``profile``."""
    from hackforge_edge.profiling.calibrate import Point
    from hackforge_edge.profiling.project import cache_bytes_of

    out = []
    for r in records:
        if r.profile != profile.name:
            continue
        if r.model not in features:
            raise ProfileError(f"no static features for {r.model!r}: run benchmarks/published_features.py")
        if r.batch != features[r.model]["batch"]:
            raise ProfileError(f"{r.model}: features are at batch {features[r.model]['batch']}, "
                               f"record at batch {r.batch}")
        feat = features_for(features[r.model], profile.engine, r.precision, cache_bytes_of(profile))
        out.append(Point(r.model, r.batch, r.latency_s, None, r.profile_mode, precision=r.precision,
                         features=feat))
    return out


def predict_point(point, params: dict[str, float], profile) -> float:
    """Projected seconds of ``point`` under ``params`` on ``profile`` (its precision and mode)."""
    from hackforge_edge.profiling.project import compute_peak, predict_seconds

    peak = compute_peak(profile, point.precision, point.mode)
    return predict_seconds(point.features, params, peak, profile.bandwidth_bps(point.mode))["total"]


def with_fp32_scale(profile, scale: float):
    """``profile`` with ``efficiency.fp32_compute_scale`` set to ``scale``."""
    eff = profile.efficiency.model_copy(update={"fp32_compute_scale": float(scale)})
    return profile.model_copy(update={"efficiency": eff})


def fits_fp32_scale(profile, points) -> bool:
    """Fit the fp32 compute scale only for TensorRT with FP32 rows of >= MIN_MODELS models
    that also have a reduced-precision row (so compute efficiency is pinned by the others)."""
    fp32 = {p.model for p in points if p.precision == "fp32"}
    low = {p.model for p in points if p.precision != "fp32"}
    return profile.engine == "tensorrt" and len(fp32 & low) >= MIN_MODELS


def fit_published(points, profile):
    """(Calibration, profile with its fitted fp32_compute_scale).

    The five efficiencies and cache speedup come from :func:`calibrate.fit`; when
    :func:`fits_fp32_scale`, the fp32 compute scale is an outer bounded 1-D search (scipy
    ``minimize_scalar`` on its log, 1..16) minimising the fit's rms log residual.
    """
    from hackforge_edge.profiling.calibrate import fit, require_scipy_optimize

    base = with_fp32_scale(profile, 1.0)
    if not fits_fp32_scale(base, points):
        return fit(points, base), base
    opt = require_scipy_optimize()
    res = opt.minimize_scalar(lambda t: fit(points, with_fp32_scale(base, math.exp(t))).rms_log_residual,
                              bounds=(0.0, math.log(16.0)), method="bounded",
                              options={"xatol": 1e-3})
    scaled = with_fp32_scale(base, math.exp(res.x))
    return fit(points, scaled), scaled


# The engine priors the shipped profiles carried before this calibration (engineering judgement,
# see each profile's history): the fit starts from them and the "before" column uses them, so
# both stay reproducible after `published_calibration.py --write` replaced them in the YAMLs.
PRIORS = {
    "nvidia-t4": dict(eta_c=0.45, eta_c_depthwise=0.10, eta_m=0.60, t_launch_us=4.0, t_host_ms=0.15,
                      cache_speedup=4.0, fp32_compute_scale=1.0),
    "jetson-agx-orin-64gb": dict(eta_c=0.40, eta_c_depthwise=0.10, eta_m=0.55, t_launch_us=8.0,
                                 t_host_ms=0.3, cache_speedup=4.0, fp32_compute_scale=1.0),
    "jetson-orin-nx-16gb": dict(eta_c=0.40, eta_c_depthwise=0.10, eta_m=0.55, t_launch_us=9.0,
                                t_host_ms=0.35, cache_speedup=4.0, fp32_compute_scale=1.0),
    "jetson-orin-nano-8gb": dict(eta_c=0.40, eta_c_depthwise=0.10, eta_m=0.55, t_launch_us=10.0,
                                 t_host_ms=0.4, cache_speedup=4.0, fp32_compute_scale=1.0),
}


def with_priors(profile):
    """``profile`` with its pre-calibration priors (:data:`PRIORS`) when its YAML holds a fit."""
    prior = PRIORS.get(profile.name)
    if prior is None or not profile.efficiency.calibrated:
        return profile
    eff = profile.efficiency.model_copy(update=prior)
    return profile.model_copy(update={"efficiency": eff})


def prior_params(profile) -> dict[str, float]:
    from hackforge_edge.profiling.project import PARAM_NAMES
    return {k: getattr(profile.efficiency, k) for k in PARAM_NAMES}


@dataclass
class LooRow:
    model: str
    precision: str
    published_ms: float
    projected_ms: float          # fit on the other models
    prior_ms: float              # the profile's prior efficiencies

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.projected_ms - self.published_ms) / self.published_ms

    @property
    def prior_error_pct(self) -> float:
        return 100.0 * (self.prior_ms - self.published_ms) / self.published_ms


@dataclass
class ProfileCalibration:
    profile: str
    params: dict[str, float]
    fp32_compute_scale: float
    band: tuple[float, float]
    loo: list[LooRow]
    models: list[str]
    precisions: list[str]
    sources: list[str]
    n_points: int
    families: list[str]
    band_widened: bool          # single family: LOO band x SINGLE_FAMILY_WIDEN each side

    @staticmethod
    def _summary(errs: list[float]) -> tuple[float, float]:
        a = [abs(e) for e in errs]
        return statistics.median(a), max(a)

    @property
    def loo_summary(self) -> tuple[float, float]:
        return self._summary([r.error_pct for r in self.loo])

    @property
    def prior_summary(self) -> tuple[float, float]:
        return self._summary([r.prior_error_pct for r in self.loo])


def leave_one_model_out(profile, points) -> list[LooRow]:
    """For each model: fit on the points of the other models (fp32 scale included), project the
    held-out model; also its projection with the profile's priors."""
    prior = prior_params(profile)
    prior_profile = with_fp32_scale(profile, 1.0)
    rows = []
    for held in dict.fromkeys(p.model for p in points):
        train = [p for p in points if p.model != held]
        cal, fitted = fit_published(train, profile)
        for p in (q for q in points if q.model == held):
            rows.append(LooRow(p.model, p.precision, p.measured_s * 1e3,
                               predict_point(p, cal.params, fitted) * 1e3,
                               predict_point(p, prior, prior_profile) * 1e3))
    return rows


def calibrate_profile(profile, records, features) -> ProfileCalibration | None:
    """Fit ``profile`` on its published records; None with fewer than MIN_MODELS models."""
    points = points_for(profile, records, features)
    models = list(dict.fromkeys(p.model for p in points))
    if len(models) < MIN_MODELS:
        return None
    loo = leave_one_model_out(profile, points)
    logs = [math.log(r.projected_ms / r.published_ms) for r in loo]
    rms = math.sqrt(sum(x * x for x in logs) / len(logs))
    k = max(max(abs(x) for x in logs), 2 * rms, BAND_FLOOR_LOG)
    families = list(dict.fromkeys(model_family(m) for m in models))
    if len(families) < 2:
        k += math.log(SINGLE_FAMILY_WIDEN)
    full, fitted = fit_published(points, profile)
    mine = [r for r in records if r.profile == profile.name]
    return ProfileCalibration(
        profile=profile.name, params=full.params,
        fp32_compute_scale=fitted.efficiency.fp32_compute_scale, band=(math.exp(-k), math.exp(k)), loo=loo,
        models=models, precisions=sorted({p.precision for p in points}),
        sources=list(dict.fromkeys(r.source_url for r in mine)), n_points=len(points),
        families=families, band_widened=len(families) < 2)


def efficiency_block(profile, cal: ProfileCalibration, *, date: str) -> dict:
    """The profile YAML ``efficiency`` mapping for a fit (runtime_overhead_mb kept)."""
    med, worst = cal.loo_summary
    p = cal.params
    return {
        "eta_c": _sig(p["eta_c"]), "eta_c_depthwise": _sig(p["eta_c_depthwise"]),
        "eta_m": _sig(p["eta_m"]), "t_launch_us": _sig(p["t_launch_us"]),
        "t_host_ms": _sig(p["t_host_ms"]), "cache_speedup": _sig(p["cache_speedup"]),
        "fp32_compute_scale": _sig(cal.fp32_compute_scale),
        "runtime_overhead_mb": profile.efficiency.runtime_overhead_mb,
        "calibrated": True,
        "band": [_sig(cal.band[0]), _sig(cal.band[1])],
        "source": (f"fitted ({date}) to {cal.n_points} published latencies of "
                   f"{', '.join(cal.models)} at {', '.join(cal.precisions)} "
                   "(profiling/published_results/measurements.yaml; log least squares, "
                   "profiling.calibrate.fit)"
                   + ("; fp32_compute_scale fitted because the published FP32 rows run faster than the "
                      "FP32 CUDA-core peak allows (likely TF32 tensor cores in TensorRT's FP32 engines)"
                      if cal.fp32_compute_scale > 1.0 else "")
                   + "; band from leave-one-model-out residuals"
                   + (f" (max of worst and 2 x rms), widened x{SINGLE_FAMILY_WIDEN:g} each side because "
                      f"all models are of one family ({cal.families[0]}): other architectures may "
                      "err more" if cal.band_widened else " (max of worst and 2 x rms)")),
        "calibrated_on": {
            "models": list(cal.models), "model_families": list(cal.families),
            "precisions": list(cal.precisions),
            "n_points": cal.n_points, "sources": list(cal.sources), "date": date,
            "data_file": "hackforge_edge/profiling/published_results/measurements.yaml",
            "loo_median_abs_error_pct": round(med, 1), "loo_worst_abs_error_pct": round(worst, 1),
        },
    }


def _sig(x: float) -> float:
    return float(f"{x:.4g}")
