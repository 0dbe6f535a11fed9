"""Rank candidate starts and predict, for each, whether transfer helps, is uncertain or hurts
compared with training from scratch. The rule and its thresholds live in thresholds.yaml.

The prediction rests on a label-aware score (k-NN accuracy on frozen features, paired on the
same folds with the scratch reference: a seeded random init of the same architecture), never
on shift statistics: two domains can differ a lot and transfer still help.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from hackforge_edge.errors import HFEdgeError

HELPS, UNCERTAIN, HURTS, REFERENCE = "helps", "uncertain", "hurts", "reference"


class TransferRefused(HFEdgeError):
    """``--gate stop`` refused a start predicted to hurt (exit code 3)."""

    exit_code = 3


@lru_cache(maxsize=1)
def load_thresholds() -> dict[str, Any]:
    """The gate and monitor thresholds shipped in hackforge_edge/gate/thresholds.yaml."""
    from importlib.resources import files

    import yaml

    return yaml.safe_load(files("hackforge_edge.gate").joinpath("thresholds.yaml").read_text())


DECISION_RULE = ("d = k-NN accuracy of the start minus that of the scratch reference on the same "
                 "CV folds; {conf:.0%} interval by the corrected resampled t-test (Nadeau & Bengio "
                 "2003); helps if its lower bound > m, hurts if its upper bound < -m, else "
                 "uncertain (m = min_effect = {eff:g})")


def decision_rule(th: dict[str, Any]) -> str:
    return DECISION_RULE.format(conf=th["confidence"], eff=th["min_effect"])


@dataclass(frozen=True)
class PairedDifference:
    """Mean paired difference of fold accuracies (fraction) with its corrected interval."""

    mean: float
    low: float
    high: float
    confidence: float
    n_folds: int


def paired_difference(a: list[float], b: list[float], *, n_train: int, n_test: int,
                      confidence: float) -> PairedDifference:
    """Nadeau-Bengio corrected resampled t interval of mean(a - b) over J folds: variance
    (1/J + n_test/n_train) s^2 (the folds overlap, so the naive 1/J is too optimistic)."""
    from scipy.stats import t as student_t

    d = np.asarray(a, float) - np.asarray(b, float)
    j = len(d)
    mean = float(d.mean())
    if j < 2:
        return PairedDifference(mean, -np.inf, np.inf, confidence, j)
    se = float(np.sqrt((1.0 / j + n_test / n_train) * d.var(ddof=1)))
    half = float(student_t.ppf(0.5 + confidence / 2, j - 1)) * se
    return PairedDifference(mean, mean - half, mean + half, confidence, j)


@dataclass
class StartEvidence:
    """Everything the gate measured for one start (accuracies are fractions; LogME and LEEP in
    nats per example; H-scores dimensionless; shift statistics as documented in shift.py)."""

    name: str
    kind: str
    knn_fold_accuracies: list[float]
    knn_accuracy: float
    linear_probe_accuracy: float | None
    logme: float
    leep: float | None
    h_score: float
    h_score_shrunk: float
    lw_shrinkage: float
    feature_dim: int
    n_train_per_fold: int
    n_test_per_fold: int
    shift: dict[str, Any] = field(default_factory=dict)
    cka_vs_reference: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StartDecision:
    """A start's rank (1 = best), predicted effect of transfer vs scratch, and the numbers."""

    name: str
    rank: int
    verdict: str  # helps | uncertain | hurts | reference
    difference_vs_scratch: dict[str, float] | None
    evidence: StartEvidence

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(evidence: list[StartEvidence], *, reference: str = "none",
           thresholds: dict[str, Any] | None = None) -> list[StartDecision]:
    """Decisions for every start, best first. ``reference`` names the scratch reference among
    ``evidence``; its own verdict is "reference"."""
    th = thresholds or load_thresholds()["gate"]
    by_name = {e.name: e for e in evidence}
    if reference not in by_name:
        raise HFEdgeError(f"the scratch reference {reference!r} was not scored")
    ref = by_name[reference]
    ordered = sorted(evidence, key=lambda e: (-e.knn_accuracy, -e.logme, e.name != reference))
    out = []
    for rank, e in enumerate(ordered, 1):
        if e.name == reference:
            out.append(StartDecision(e.name, rank, REFERENCE, None, e))
            continue
        diff = paired_difference(e.knn_fold_accuracies, ref.knn_fold_accuracies,
                                 n_train=e.n_train_per_fold, n_test=e.n_test_per_fold,
                                 confidence=float(th["confidence"]))
        eff = float(th["min_effect"])
        verdict = HELPS if diff.low > eff else HURTS if diff.high < -eff else UNCERTAIN
        out.append(StartDecision(e.name, rank, verdict, asdict(diff), e))
    return out


def better_start(decisions: list[StartDecision], than: str) -> StartDecision:
    """The best-ranked start other than ``than`` that is not predicted to hurt (the scratch
    reference qualifies: training from scratch is always an option)."""
    for d in decisions:
        if d.name != than and d.verdict != HURTS:
            return d
    return next(d for d in decisions if d.verdict == REFERENCE)


def describe_start(name: str) -> str:
    """How a user asks for this start on the command line."""
    return "training from scratch (--weights none)" if name == "none" else f"--weights {name}"
