"""``hf-edge gate`` as functions: load data -> load candidate starts -> forward passes ->
shift + transferability -> decision -> gate.json. Also the pre-flight ``train-and-export`` runs.

Forward passes only: nothing here trains (except a cache miss of the synthetic-source model,
which ``--weights source`` needs anyway and which is cached for the run that follows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hackforge_edge.errors import DataError, UsageError
from hackforge_edge.training.defaults import DEFAULTS

SYNTHETIC = ("synthetic", "synthetic-target", "synthetic-source")
METHOD = ("forward passes of each candidate start over the target's labelled training split "
          "(and the source sample for shift); scores computed on the frozen features")


@dataclass
class GateConfig:
    """What ``hf-edge gate`` needs. ``weights``: candidate starts (none | source | imagenet |
    PATH); the scratch reference "none" is always scored too. Sizes are images."""

    target: str = "synthetic-target"
    source: str | None = "synthetic-source"
    model: str = DEFAULTS.model
    weights: tuple[str, ...] = ("source",)
    image_size: int = DEFAULTS.image_size
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    synthetic_train: int | None = None  # target training images for synthetic data
    progress: bool = False


def check_sample_sizes(n_per_class: list[int], n_source: int | None, n_target: int,
                       th: dict[str, Any]) -> None:
    """Before any model is loaded: enough examples for the CV probe, MMD and the domain classifier."""
    from hackforge_edge.gate.shift import MIN_PER_DOMAIN_PERMUTATION

    folds = int(th["cv_splits"])
    if min(n_per_class) < folds:
        raise DataError(f"the gate's cross-validated probe needs at least {folds} labelled target "
                        f"training images per class ({folds}-fold); got {n_per_class}")
    if n_source is not None:
        need = max(MIN_PER_DOMAIN_PERMUTATION, 5)
        if min(n_source, n_target) < need:
            raise DataError(f"the shift tests need at least {need} images per domain (MMD "
                            f"permutation test, 5-fold domain classifier); got {n_source} source "
                            f"and {n_target} target")


def check_images(source: np.ndarray | None, target: np.ndarray) -> list[str]:
    """Channel counts must match (one line otherwise); sizes may differ: both are resized to the
    target's preprocessing. Returns notes saying what was resized."""
    def channels(a):
        return 1 if a.ndim == 3 else a.shape[-1]

    if target.ndim not in (3, 4):
        raise DataError(f"target images: expected N x H x W x C, got shape {target.shape}")
    if source is None:
        return []
    if channels(source) != channels(target):
        raise DataError(f"source images have {channels(source)} channel(s) and target images "
                        f"{channels(target)}: convert both to RGB first")
    if source.shape[1:3] != target.shape[1:3]:
        return [f"source images resized from {source.shape[1]}x{source.shape[2]} to the target's "
                f"{target.shape[1]}x{target.shape[2]} px (bilinear)"]
    return []


def _subsample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 99]).choice(n, cap, replace=False))


def assess_starts(starts: list, target_x: np.ndarray, target_y: np.ndarray,
                  source_x: np.ndarray | None, *, th: dict[str, Any], seed: int = 0,
                  reference: str = "none", device: str = "cpu") -> list:
    """StartEvidence for every loaded start (``gate.features.CandidateStart``) on float32 NCHW
    target images with labels, and source images for shift statistics (or None)."""
    from hackforge_edge.gate import shift
    from hackforge_edge.gate import transferability as tr
    from hackforge_edge.gate.decide import StartEvidence
    from hackforge_edge.gate.features import forward_features

    cap = int(th["max_shift_samples"])
    it = _subsample(len(target_x), cap, seed)
    is_ = None if source_x is None else _subsample(len(source_x), cap, seed + 1)
    feats = {}
    out = []
    for start in starts:
        f_t, probs = forward_features(start, target_x, device=device)
        feats[start.name] = f_t
        knn = tr.probe_accuracy(f_t, target_y, probe="knn", k=int(th["knn_k"]),
                                n_splits=int(th["cv_splits"]), n_repeats=int(th["cv_repeats"]), seed=seed)
        lin = tr.probe_accuracy(f_t, target_y, probe="linear", n_splits=int(th["cv_splits"]),
                                n_repeats=1, seed=seed)
        hs, alpha = tr.shrunk_h_score(f_t, target_y)
        sh: dict[str, Any] = {}
        if source_x is not None:
            f_s, _ = forward_features(start, source_x[is_], device=device)
            sh = {"mmd": shift.mmd_test(f_s, f_t[it], n_permutations=int(th["mmd_permutations"]),
                                        seed=seed).to_json(),
                  "pad": shift.proxy_a_distance(f_s, f_t[it], seed=seed).to_json(),
                  "ks": shift.ks_shift(f_s, f_t[it]).to_json(),
                  "space": f"{start.name} backbone features"}
        out.append(StartEvidence(
            name=start.name, kind=start.kind, knn_fold_accuracies=knn.fold_accuracies,
            knn_accuracy=knn.mean_accuracy, linear_probe_accuracy=lin.mean_accuracy,
            logme=tr.logme(f_t, target_y), leep=tr.leep(probs, target_y) if probs is not None else None,
            h_score=tr.h_score(f_t, target_y), h_score_shrunk=hs, lw_shrinkage=alpha,
            feature_dim=int(f_t.shape[1]), n_train_per_fold=knn.n_train_per_fold,
            n_test_per_fold=knn.n_test_per_fold, shift=sh, info=_plain(start.info)))
    if reference in feats:
        for e in out:
            e.cka_vs_reference = shift.linear_cka(feats[e.name], feats[reference])
    return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (paths and numbers as plain types)."""
    import json

    return json.loads(json.dumps(d, default=str))


def build_report(decisions, *, model: str, image_size: int, seed: int, source: dict, target: dict,
                 th: dict[str, Any], notes: list[str], duration_s: float):
    from hackforge_edge.bundle import utc_now
    from hackforge_edge.gate.decide import REFERENCE, decision_rule
    from hackforge_edge.gate.report import GateReport, StartEntry

    starts = []
    for d in decisions:
        e = d.evidence
        starts.append(StartEntry(
            name=d.name, kind=e.kind, rank=d.rank, verdict=d.verdict,
            difference_vs_scratch=d.difference_vs_scratch, knn_accuracy=e.knn_accuracy,
            knn_fold_accuracies=e.knn_fold_accuracies, linear_probe_accuracy=e.linear_probe_accuracy,
            logme=e.logme, leep=e.leep, h_score=e.h_score, h_score_shrunk=e.h_score_shrunk,
            lw_shrinkage=e.lw_shrinkage, feature_dim=e.feature_dim,
            cka_vs_reference=e.cka_vs_reference, shift=e.shift, info=e.info))
    recommended = next(d.name for d in decisions if d.verdict != "hurts")
    ref = next(d.name for d in decisions if d.verdict == REFERENCE)
    return GateReport(method=METHOD, created_at=utc_now(), model=model, image_size_px=image_size,
                      seed=seed, source=source, target=target, reference=ref,
                      decision_rule=decision_rule(th), thresholds=th, starts=starts,
                      recommended=recommended, notes=notes, duration_s=duration_s)


def _check_config(cfg: GateConfig) -> None:
    from hackforge_edge.gate.features import check_start
    from hackforge_edge.models.registry import MODELS

    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r} (valid: {', '.join(sorted(MODELS))})")
    if not cfg.weights:
        raise UsageError("give at least one candidate start with --weights")
    for w in cfg.weights:
        check_start(w)
    for flag, value in (("--target", cfg.target), ("--source", cfg.source)):
        if value is not None and value not in SYNTHETIC and not Path(value).is_dir():
            raise DataError(f"{flag} {value}: no such directory (or use synthetic-source / "
                            "synthetic-target)")
    if cfg.image_size < 16:
        raise UsageError(f"--image-size must be >= 16 pixels, got {cfg.image_size}")


def run_gate(cfg: GateConfig, say: Callable[[str], None] = print):
    """Score every start in ``cfg.weights`` (plus the scratch reference) and decide.
    Returns (GateReport, path of gate.json or None when ``cfg.out`` is None)."""
    from hackforge_edge.data.loader import load_dataset
    from hackforge_edge.gate.decide import decide, load_thresholds
    from hackforge_edge.gate.features import load_start

    t0 = time.perf_counter()
    _check_config(cfg)
    th = load_thresholds()["gate"]
    # only the training split is scored: no synthetic val/test images are generated
    sizes = {"train": cfg.synthetic_train or 160, "val": 0, "test": 0}
    target = load_dataset(cfg.target, image_size=cfg.image_size, seed=cfg.seed, synthetic_sizes=sizes)
    source = None
    if cfg.source is not None:
        source = load_dataset(cfg.source, image_size=cfg.image_size, seed=cfg.seed, synthetic_sizes=sizes)
    tr = target.train
    check_sample_sizes(tr.class_counts(target.num_classes), None if source is None else len(source.train),
                       len(tr), th)
    notes = check_images(None if source is None else source.train.images, tr.images)
    notes.append(f"both domains loaded at {cfg.image_size} px (bilinear resize)")
    names = list(dict.fromkeys([*cfg.weights, "none"]))
    starts = [load_start(w, model=cfg.model, image_size=cfg.image_size, seed=cfg.seed,
                         source_seed=cfg.seed, progress=cfg.progress, device=cfg.device) for w in names]
    x_t = tr.to_nchw(target.preprocess)
    x_s = None if source is None else source.train.to_nchw(target.preprocess)
    evidence = assess_starts(starts, x_t, tr.labels, x_s, th=th, seed=cfg.seed, device=cfg.device)
    decisions = decide(evidence, reference="none", thresholds=th)
    report = build_report(
        decisions, model=cfg.model, image_size=cfg.image_size, seed=cfg.seed,
        source={} if source is None else {**source.description, "split": "train", "n_images": len(source.train)},
        target={**target.description, "split": "train", "n_images": len(tr)},
        th=th, notes=notes, duration_s=time.perf_counter() - t0)
    path = None
    if cfg.out:
        path = report.write(Path(cfg.out))
    return report, path


@dataclass
class Preflight:
    """The pre-flight's outcome inside ``train-and-export``: the report, the verdict on the
    chosen start, and the online monitor to plug into the training loop (or None)."""

    report: Any  # GateReport
    verdict: str
    message: str
    mode: str
    monitor: Any = None  # gate.monitor.TransferMonitor
    monitor_baseline: dict[str, Any] = field(default_factory=dict)

    @property
    def hooks(self) -> tuple:
        return () if self.monitor is None else (self.monitor,)

    def finish(self, out: Path, phases=None, say: Callable[[str], None] = print) -> dict[str, Any]:
        """Write gate.json into the bundle; return the manifest's ``gate`` entry (with the
        monitor's record and the energy its stop did not spend, estimated)."""
        self.report.write(out)
        mon = None
        if self.monitor is not None:
            m = next((m for m in (phases or []) if m.name == "target_transfer"), None)
            mon = self.monitor.summary(getattr(m, "energy_j_total", None), getattr(m, "kind", None))
            if mon["stopped"]:
                saved = mon["energy_not_spent"] or {}
                say(f"gate monitor: stopped after epoch {mon['would_stop_epoch']} of "
                    f"{mon['epochs_planned']} (val accuracy below the baseline "
                    f"{self.monitor.baseline_accuracy:.3f} for {self.monitor.patience} epochs); "
                    f"energy not spent ~{saved.get('energy_j', float('nan')):.3g} J (estimated)")
            elif mon["would_stop_epoch"] is not None:
                say(f"warning: gate monitor: val accuracy stayed below the baseline "
                    f"{self.monitor.baseline_accuracy:.3f}; --gate stop would have stopped after "
                    f"epoch {mon['would_stop_epoch']}")
        return {"mode": self.mode, "verdict": self.verdict, "message": self.message,
                "file": "gate.json", "recommended": self.report.recommended, "monitor": mon}


def preflight(*, model: str, weights: str, splits, image_size: int, seed: int, mode: str,
              epochs: int, device: str = "cpu", say: Callable[[str], None] = print) -> Preflight | None:
    """Gate ``weights`` against the scratch reference on the target's training split.

    ``mode``: off (nothing) | warn (say it, go on) | stop (raise TransferRefused, exit 3, when
    the start is predicted to hurt; the monitor then stops a run that stays below its baseline).
    The monitor's baseline: a k-NN probe on the scratch reference's frozen features, fit on
    train and scored on val (accuracy, fraction).
    """
    from hackforge_edge.gate.decide import (
        HURTS,
        TransferRefused,
        better_start,
        decide,
        describe_start,
        load_thresholds,
    )
    from hackforge_edge.gate.features import forward_features, load_start
    from hackforge_edge.gate.monitor import TransferMonitor

    if mode == "off" or weights == "none":
        return None
    if weights == "source" and not _source_cached(model, image_size, seed):
        # pretraining it here would move its energy out of the run's metered source phase
        say("gate: pre-flight skipped: the source model is not cached yet and this run pretrains "
            "it (metered); run `hf-edge gate` or re-run to gate it")
        return None
    t0 = time.perf_counter()
    th = load_thresholds()["gate"]
    tr = splits.train
    check_sample_sizes(tr.class_counts(splits.num_classes), None, len(tr), th)
    starts = [load_start(w, model=model, image_size=image_size, seed=seed, source_seed=seed,
                         device=device) for w in (weights, "none")]
    x_t = tr.to_nchw(splits.preprocess)
    evidence = assess_starts(starts, x_t, tr.labels, None, th=th, seed=seed, device=device)
    decisions = decide(evidence, reference="none", thresholds=th)
    report = build_report(decisions, model=model, image_size=image_size, seed=seed, source={},
                          target={**splits.description, "split": "train", "n_images": len(tr)},
                          th=th, notes=["pre-flight of train-and-export: no source sample, so no "
                                        "shift statistics"], duration_s=time.perf_counter() - t0)
    mine = report.entry(weights)
    diff = mine.difference_vs_scratch or {}
    numbers = (f"k-NN probe {mine.knn_accuracy:.3f} vs scratch reference "
               f"{report.entry('none').knn_accuracy:.3f}, difference {diff.get('mean', 0):+.3f} "
               f"[{diff.get('low', 0):+.3f}, {diff.get('high', 0):+.3f}]")
    if mine.verdict == HURTS:
        alt = better_start(decisions, weights)
        msg = (f"gate: transfer from --weights {weights} is predicted to hurt ({numbers}); "
               f"better start: {describe_start(alt.name)}")
        if mode == "stop":
            raise TransferRefused(msg)
        say(f"warning: {msg}; going on (--gate warn)")
    else:
        msg = f"gate: --weights {weights} predicted {mine.verdict} vs scratch ({numbers})"
        say(msg)
    baseline = _probe_baseline(starts[1], x_t, tr.labels, splits, th, device, forward_features)
    monitor = None
    if baseline:
        monitor = TransferMonitor.from_thresholds(baseline["val_accuracy"], baseline["name"], epochs,
                                                  enforce=mode == "stop")
    return Preflight(report, mine.verdict, msg, mode, monitor, baseline)


def _source_cached(model: str, image_size: int, seed: int) -> bool:
    from hackforge_edge.models.source import SourceRecipe, cache_key, cache_root

    stem = cache_key(model, int(image_size), int(seed), SourceRecipe())
    root = cache_root() / "source-models"
    return (root / f"{stem}.pt").is_file() and (root / f"{stem}.json").is_file()


def _probe_baseline(ref_start, x_t, y_t, splits, th, device, forward_features) -> dict[str, Any]:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(splits.val) == 0:
        return {}
    f_t, _ = forward_features(ref_start, x_t, device=device)
    f_v, _ = forward_features(ref_start, splits.val.to_nchw(splits.preprocess), device=device)
    k = max(1, min(int(th["knn_k"]), len(y_t)))
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k)).fit(f_t, y_t)
    acc = float(np.mean(clf.predict(f_v) == splits.val.labels))
    return {"val_accuracy": acc, "n_val": int(len(splits.val)),
            "name": "k-NN probe on the scratch reference's frozen features (seeded random init), "
                    "fit on target train, measured on target val"}
