"""``gate.json``: the gate's verdict per candidate start, with every number behind it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from hackforge_edge.bundle.schema import Artifact


class StartEntry(BaseModel):
    """One candidate start. Accuracies are fractions; LogME and LEEP nats per example."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str  # none | source | imagenet | file
    rank: int  # 1 = best by k-NN probe accuracy
    verdict: str  # helps | uncertain | hurts | reference (the scratch reference itself)
    difference_vs_scratch: dict[str, float] | None  # mean, low, high, confidence, n_folds
    knn_accuracy: float
    knn_fold_accuracies: list[float]
    linear_probe_accuracy: float | None
    logme: float
    leep: float | None  # None: the start has no source head
    h_score: float
    h_score_shrunk: float
    lw_shrinkage: float
    feature_dim: int
    cka_vs_reference: float | None  # linear CKA, same target images through this start and scratch
    shift: dict[str, Any]  # mmd / pad / ks between source and target in this start's features
    info: dict[str, Any]


class GateReport(Artifact):
    """What ``hf-edge gate`` (and ``train-and-export``'s pre-flight) measured and decided."""

    FILENAME: ClassVar[str] = "gate.json"
    schema_version: Literal[1] = 1

    kind: Literal["measured"] = "measured"
    method: str  # how the numbers were obtained
    created_at: str
    model: str
    image_size_px: int
    seed: int
    source: dict[str, Any]  # description of the source data (None-like {} when not given)
    target: dict[str, Any]  # description of the target data and the split scored
    reference: str  # the scratch reference start
    decision_rule: str
    thresholds: dict[str, Any]
    starts: list[StartEntry]  # best first
    recommended: str
    notes: list[str]
    duration_s: float

    def entry(self, name: str) -> StartEntry:
        return next(s for s in self.starts if s.name == name)
