"""Calibration: fit an engine's efficiencies (eta_c, eta_c_depthwise, eta_m, t_launch, t_host)
to latencies measured on the device itself.

The fit is least squares on log latency (prediction from :mod:`project`'s roofline model)
with a weak log-normal prior towards the profile's shipped efficiencies, so a small set of
reference models stays well posed. The residuals become the error band of later
projections. Fits live as JSON under the user cache dir
(``$HF_EDGE_CACHE`` or ``$XDG_CACHE_HOME/hackforge-edge`` or ``~/.cache/hackforge-edge``):
``calibration/<profile>.json``. A fit of ``local`` (ort-cpu) also serves as a prior, with
a widened band, for the other ort-cpu profiles. ``hf-edge calibrate`` fits only measurements
of the models themselves on the device; the shipped T4/Jetson efficiencies were fitted with the
same :func:`fit` to published latencies (:mod:`.published`, each point at its own precision).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hackforge_edge.errors import ProfileError, UsageError

REFERENCE_MODELS = ("mobilenet_v2", "efficientnet_b0", "resnet18", "resnet50", "bert-small")
BERT_SMALL = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
              "intermediate_size": 1024}
BERT_SEQ_LEN = 128
PRIOR_SIGMA_LOG = math.log(3.0)   # prior: each efficiency known to within ~x3
PRIOR_WEIGHT = 0.05               # relative to one measured point (weak: data dominate)
BAND_FLOOR_LOG = math.log(1.10)   # never claim better than +-10 %
PRIOR_WIDEN = 2.0                 # a fit used as prior for another device: band x2 each side
STATISTIC = "min"                 # fitted latency: min over timed runs (least contention)
SCHEMA_VERSION = 1


def cache_dir() -> Path:
    if os.environ.get("HF_EDGE_CACHE"):
        return Path(os.environ["HF_EDGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hackforge-edge"


def calibration_path(profile_name: str) -> Path:
    return cache_dir() / "calibration" / f"{profile_name}.json"


# ---- reference models ------------------------------------------------------------------------
def export_reference(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Export a reference model with random weights to ONNX (cached; dynamic batch)."""
    if name not in REFERENCE_MODELS:
        raise UsageError(f"unknown reference model {name!r} (known: {', '.join(REFERENCE_MODELS)})")
    out_dir = Path(out_dir) if out_dir else cache_dir() / "reference-models"
    path = out_dir / f"{name}.onnx"
    if path.is_file():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    import warnings

    import torch

    torch.manual_seed(0)
    if name == "bert-small":
        from transformers import BertConfig, BertForSequenceClassification
        model = BertForSequenceClassification(BertConfig(**BERT_SMALL)).eval()
        args = (torch.randint(0, 1000, (1, BERT_SEQ_LEN)),
                torch.ones(1, BERT_SEQ_LEN, dtype=torch.long))
        names = ["input_ids", "attention_mask"]
        dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    else:
        import torchvision
        model = getattr(torchvision.models, name)(weights=None).eval()
        args = (torch.randn(1, 3, 224, 224),)
        names = ["input"]
        dyn = {"input": {0: "batch"}}
    tmp = out_dir / f".{name}.tmp.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(tmp), dynamo=True, input_names=names,
                          output_names=["logits"], dynamic_axes=dyn, verbose=False)
    # the exporter may write tmp + tmp.data; re-save under the final name in one piece
    import onnx
    m = onnx.load(str(tmp))
    onnx.save(m, str(path), save_as_external_data=True, location=f"{name}.onnx.data")
    tmp.unlink(missing_ok=True)
    Path(str(tmp) + ".data").unlink(missing_ok=True)
    return path


def reference_seq_len(name: str) -> int | None:
    return BERT_SEQ_LEN if name.startswith("bert") else None


# ---- fitting --------------------------------------------------------------------------------
def require_scipy_optimize():
    """``scipy.optimize``, or a one-line error naming the extra that brings it.

    Fitting is a train/dev-side step (``hf-edge calibrate``); reading a stored fit
    (:func:`load_calibration`, used by ``hf-edge profile``) needs no scipy.
    """
    try:
        import scipy.optimize
    except ImportError:
        raise UsageError("hf-edge calibrate needs scipy, which is not installed: "
                         "pip install 'hackforge-edge[train]'") from None
    return scipy.optimize


@dataclass
class Point:
    """One measured latency and the static analysis it belongs to."""

    model: str
    batch: int
    measured_s: float
    static: Any                      # StaticAnalysis at this batch (None when ``features`` given)
    mode: str | None = None
    precision: str = "fp32"          # the engine ran the model at this precision (its peak is used)
    features: Any = None             # precomputed project.Features (published-results fits)


def _roofs(profile, mode=None, precision: str = "fp32") -> tuple[float, float]:
    from hackforge_edge.profiling.project import compute_peak
    peak = compute_peak(profile, precision, mode)
    if peak is None:
        raise ProfileError(f"profile {profile.name} has no {precision} peak")
    return peak, profile.bandwidth_bps(mode)


def _predict(points, feats, params, profile, roofs=None):
    from hackforge_edge.profiling.project import predict_seconds
    out = []
    for p, f in zip(points, feats, strict=True):
        peak, bw = _roofs(profile, p.mode, p.precision)
        if roofs is not None:
            pm = profile.mode(p.mode)
            ratio = peak / _roofs(profile, p.mode)[0]               # precision vs the fp32 roof
            peak, bw = roofs[0] * pm.compute_scale * ratio, roofs[1] * pm.bandwidth_scale
        out.append(predict_seconds(f, params, peak, bw)["total"])
    return out


def fit(points: list[Point], profile, *, prior: dict[str, float] | None = None) -> "Calibration":
    """Fit the six parameters of ``profile``'s engine (PARAM_NAMES) to ``points`` (log least squares)."""
    import numpy as np

    least_squares = require_scipy_optimize().least_squares
    from hackforge_edge.profiling.project import PARAM_NAMES, cache_bytes_of, layer_features

    if not points:
        raise UsageError("calibration needs at least one measured point")
    prior = prior or {k: getattr(profile.efficiency, k) for k in PARAM_NAMES}
    feats = [p.features if p.features is not None else
             layer_features(p.static, profile.engine, p.precision, cache_bytes=cache_bytes_of(profile))
             for p in points]
    meas = np.log([p.measured_s for p in points])
    upper = np.array([0.0, 0.0, 0.0, np.inf, np.inf, np.log(100.0)])   # efficiencies <= 1
    lower = np.array([-np.inf] * 5 + [0.0])                              # cache_speedup >= 1
    theta0 = np.clip(np.log([max(prior[k], 1e-9) for k in PARAM_NAMES]), lower, upper)
    w_prior = math.sqrt(PRIOR_WEIGHT) / PRIOR_SIGMA_LOG

    def residuals(theta):
        params = dict(zip(PARAM_NAMES, np.exp(theta), strict=True))
        pred = np.log(_predict(points, feats, params, profile))
        return np.concatenate([pred - meas, w_prior * (theta - theta0)])

    # trust-region reflective least squares in log space, bounds instead of clipping
    theta = least_squares(residuals, theta0, bounds=(lower, upper), method="trf",
                          xtol=1e-10, ftol=1e-10, gtol=1e-10).x
    params = dict(zip(PARAM_NAMES, [float(x) for x in np.exp(theta)], strict=True))
    pred = _predict(points, feats, params, profile)
    res = [math.log(pp / p.measured_s) for pp, p in zip(pred, points, strict=True)]
    n = len(res)
    rms = math.sqrt(sum(x * x for x in res) / n)
    n_params = len(PARAM_NAMES)
    if n > n_params:
        # residuals understate the error of a fit by its degrees of freedom used
        k = max(2 * rms, max(abs(x) for x in res), BAND_FLOOR_LOG) * math.sqrt(n / (n - n_params))
    else:
        # no more points than parameters: the residuals say nothing about the error, so the
        # band stays as wide as the prior's
        k = max(2 * rms, max(abs(x) for x in res), PRIOR_SIGMA_LOG)
    peak, bw = _roofs(profile)
    pm = profile.mode()
    return Calibration(
        profile=profile.name, engine=profile.engine, params=params,
        band=(math.exp(-k), math.exp(k)), rms_log_residual=rms, n_points=n,
        residuals=[{"model": p.model, "batch": p.batch, "mode": p.mode or pm.name,
                    "precision": p.precision, "measured_ms": p.measured_s * 1e3, "predicted_ms": pp * 1e3,
                    "log_residual": x} for p, pp, x in zip(points, pred, res, strict=True)],
        roofs={"peak_fp32_flops": peak / pm.compute_scale, "bandwidth_bps": bw / pm.bandwidth_scale,
               "cpu_ghz": profile.cpu_ghz, "cores": profile.cpu_cores},
        device=(profile.detected or {}).get("cpu_model") if profile.detected else profile.display_name,
        method=("log-latency least squares (scipy.optimize.least_squares, trf, bounded) over eta_c, eta_c_depthwise, "
                f"eta_m, t_launch_us, t_host_ms, cache_speedup with a log-normal prior (sigma ln 3, weight "
                f"{PRIOR_WEIGHT}) towards the profile's defaults; latency statistic: {STATISTIC}"
                + ("" if n > n_params else f"; only {n} point(s) for {n_params} parameters: band "
                   "kept at the prior's width")),
        created_at=_now())


def _now() -> str:
    from hackforge_edge.bundle import utc_now
    return utc_now()


@dataclass
class Calibration:
    profile: str
    engine: str
    params: dict[str, float]
    band: tuple[float, float]
    rms_log_residual: float
    n_points: int
    residuals: list[dict[str, Any]]
    roofs: dict[str, Any]
    device: str | None
    method: str
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "profile": self.profile, "engine": self.engine,
                "params": self.params, "band": list(self.band),
                "rms_log_residual": self.rms_log_residual, "n_points": self.n_points,
                "residuals": self.residuals, "roofs": self.roofs, "device": self.device,
                "method": self.method, "created_at": self.created_at, **self.extra}

    @classmethod
    def from_json(cls, d: dict, where: str = "calibration") -> "Calibration":
        try:
            return cls(profile=d["profile"], engine=d["engine"], params=dict(d["params"]),
                       band=tuple(d["band"]), rms_log_residual=float(d["rms_log_residual"]),
                       n_points=int(d["n_points"]), residuals=list(d.get("residuals", [])),
                       roofs=dict(d["roofs"]), device=d.get("device"), method=d["method"],
                       created_at=d.get("created_at", ""),
                       extra={k: v for k, v in d.items() if k in ("threads", "runs", "statistic", "measured_file",
                                                                   "onnxruntime_version")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{where}: malformed calibration file (missing/invalid {exc})") from None

    def save(self, path: str | os.PathLike | None = None) -> Path:
        from hackforge_edge.bundle import atomic_write_json
        return atomic_write_json(path or calibration_path(self.profile), self.to_json())

    def params_for(self, profile) -> tuple[dict[str, float], dict[str, Any], dict | None]:
        """(params, calibration block, roofs) when projecting onto ``profile``."""
        from hackforge_edge.profiling.project import PARAM_NAMES
        base = {"n_points": self.n_points, "rms_log_residual": self.rms_log_residual,
                "fitted_on": self.profile, "device": self.device, "created_at": self.created_at}
        if profile.name == self.profile:
            block = {"calibrated": True, "source": f"fit on {self.n_points} measured latencies "
                     f"({self.device}); {self.method}", "band_low": self.band[0],
                     "band_high": self.band[1], **base,
                     "note": "band from the fit's log residuals (max of 2 x rms and the worst)"}
            roofs = dict(self.roofs)
            if roofs.get("cores") and profile.cpu_cores and roofs["cores"] != profile.cpu_cores:
                # fitted with fewer intra-op threads than the profile has cores
                roofs["peak_fp32_flops"] *= profile.cpu_cores / roofs["cores"]
                block["note"] += (f"; fitted with {roofs['cores']} thread(s), compute roof scaled "
                                  f"to {profile.cpu_cores} cores")
            return dict(self.params), block, roofs
        if self.engine != profile.engine:
            raise ProfileError(f"calibration for {self.profile} ({self.engine}) does not apply "
                               f"to {profile.name} ({profile.engine})")
        params = {k: self.params.get(k, getattr(profile.efficiency, k)) for k in PARAM_NAMES}
        ghz_from, ghz_to = self.roofs.get("cpu_ghz"), profile.cpu_ghz
        if ghz_from and ghz_to:      # per-node and per-call overheads are CPU-bound
            params["t_launch_us"] *= ghz_from / ghz_to
            params["t_host_ms"] *= ghz_from / ghz_to
        lo, hi = self.band[0] / PRIOR_WIDEN, self.band[1] * PRIOR_WIDEN
        block = {"calibrated": False, "source": f"prior: the {self.profile} {self.engine} fit "
                 f"({self.device}) transferred, overheads scaled by CPU clock", "band_low": lo,
                 "band_high": hi, **base,
                 "note": f"not calibrated on this target; band widened x{PRIOR_WIDEN:g} each side"}
        return params, block, None


def load_calibration(profile) -> Calibration | None:
    """The stored fit for ``profile``, else (ort-cpu only) the local fit as a prior."""
    from hackforge_edge.bundle import read_json
    from hackforge_edge.errors import BundleError

    def _read(name):
        p = calibration_path(name)
        if not p.is_file():
            return None
        try:
            return Calibration.from_json(read_json(p), str(p))
        except BundleError as exc:
            raise ProfileError(str(exc)) from None

    own = _read(profile.name)
    if own is not None:
        if profile.name == "local" and profile.detected and \
                own.device != profile.detected.get("cpu_model"):
            own = None               # fitted on another machine sharing this cache dir
        else:
            return own
    if profile.engine == "ort-cpu" and profile.name != "local":
        return _read("local")
    return None


# ---- measuring the reference set -----------------------------------------------------------
def measure_points(models=REFERENCE_MODELS, *, batch_sizes=(1, 4), runs: int = 10,
                   warmup: int = 2, models_dir=None, threads: int | None = 1,
                   progress: Callable[[str], None] | None = None) -> list[Point]:
    """Export (cached), analyse and measure each reference model on this machine.

    Runs are interleaved (round r runs every model/batch once) so that load from other
    processes hits all models alike, and the fitted statistic is the minimum over rounds.
    ``threads`` defaults to 1: a single intra-op thread is far less sensitive to a shared,
    busy CPU than a thread pool; with more, the pools' spin-wait is off (interleaved timing).
    """
    from hackforge_edge.profiling.measure import make_inputs
    from hackforge_edge.profiling.static import analyze
    from hackforge_edge.runtime.session import make_session
    from hackforge_edge.runtime.timing import time_interleaved

    cases = []
    for name in models:
        if progress:
            progress(f"exporting/analysing {name}")
        path = export_reference(name, models_dir)
        seq = reference_seq_len(name)
        # interleaved timing: no session may keep spinning threads after its call
        sess = make_session(path, threads=threads, allow_spinning=False)
        for b in batch_sizes:
            feeds = make_inputs(sess, b, seq_len=seq)
            cases.append({"name": name, "batch": b, "run": lambda s=sess, f=feeds: s.run(None, f),
                          "static": analyze(path, batch=b, seq_len=seq)})
    if progress:
        progress(f"measuring {len(cases)} cases x {runs} interleaved rounds")
    timings = time_interleaved([c["run"] for c in cases], warmup=max(1, warmup), runs=runs)
    return [Point(c["name"], c["batch"], t.min_ms / 1e3, c["static"]) for c, t in zip(cases, timings, strict=True)]


def calibrate_local(models=REFERENCE_MODELS, *, batch_sizes=(1, 4), runs: int = 20,
                    threads: int | None = 1, save: bool = True,
                    progress: Callable[[str], None] | None = None) -> Calibration:
    """Measure the reference models here and fit the ``local`` ort-cpu engine."""
    import onnxruntime as ort

    from hackforge_edge.profiling.hardware import detect_local

    profile = detect_local(threads=threads)
    points = measure_points(models, batch_sizes=batch_sizes, runs=runs, threads=threads,
                            progress=progress)
    cal = fit(points, profile)
    cal.extra.update({"threads": threads, "runs": runs, "statistic": STATISTIC,
                      "onnxruntime_version": ort.__version__})
    if save:
        cal.save()
    return cal


def read_measured(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of (model, batch, latency_ms[, seq_len, mode]) from a CSV or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--measured {path}: file not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise UsageError(f"--measured {path}: not valid YAML") from None
        rows = data.get("measurements", data) if isinstance(data, dict) else data
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    if not isinstance(rows, list) or not rows:
        raise UsageError(f"--measured {path}: expected rows of model, batch, latency_ms")
    out = []
    for i, row in enumerate(rows, start=1):
        try:
            model = str(row["model"]).strip()
            batch = int(row.get("batch") or 1)
            lat = float(row["latency_ms"])
            seq = row.get("seq_len")
            seq = int(seq) if seq not in (None, "") else None
            if batch < 1 or lat <= 0 or not model:
                raise ValueError
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(f"--measured {path}: row {i} needs model, batch >= 1 and "
                             "latency_ms > 0") from None
        out.append({"model": model, "batch": batch, "latency_ms": lat, "seq_len": seq,
                    "mode": (row.get("mode") or None)})
    return out


def calibrate_from_measured(profile_name: str, measured_file, *, save: bool = True) -> Calibration:
    """Fit ``profile_name`` to latencies the user measured on that device.

    ``model`` is an .onnx path (relative to the file) or a reference-model name.
    """
    from hackforge_edge.profiling.hardware import load_profile
    from hackforge_edge.profiling.static import analyze

    profile = load_profile(profile_name)
    rows = read_measured(measured_file)
    base = Path(measured_file).parent
    points = []
    for row in rows:
        if row["model"] in REFERENCE_MODELS:
            path = export_reference(row["model"])
            seq = row["seq_len"] or reference_seq_len(row["model"])
        else:
            path = Path(row["model"])
            path = path if path.is_absolute() else base / path
            seq = row["seq_len"]
        if row["mode"]:
            profile.mode(row["mode"])          # validates the name
        st = analyze(path, batch=row["batch"], seq_len=seq)
        points.append(Point(str(row["model"]), row["batch"], row["latency_ms"] / 1e3, st,
                            row["mode"]))
    cal = fit(points, profile)
    cal.extra.update({"statistic": "as measured by the user", "measured_file": str(measured_file)})
    if save:
        cal.save()
    return cal
