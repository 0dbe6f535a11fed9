"""Classification metrics in numpy: accuracy, F1, sensitivity, specificity, ROC-AUC, confusion.

An undefined metric (no positives in the test set, a single-class test set) is ``None`` (JSON
null), never NaN: the bundle writer refuses NaN and a reader must see "not measurable", not a
number. Binary tasks report the positive class (default: the last class, e.g. "malignant");
multi-class tasks report macro averages of the one-vs-rest values.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0  # mean of ranks s+1 .. e
    return ranks


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic; None if one class is absent."""
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    r = average_ranks(score)
    u = r[is_positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 C x C matrix; rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def _one_vs_rest(cm: np.ndarray, c: int) -> dict[str, float | None]:
    tp = cm[c, c]
    fn = cm[c].sum() - tp
    fp = cm[:, c].sum() - tp
    tn = cm.sum() - tp - fn - fp
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp), "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _macro(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, *,
                           class_names: Sequence[str] | None = None,
                           positive_class: int | None = None) -> dict[str, Any]:
    """Metrics from true labels (N ints) and class probabilities (N x C floats, rows sum to 1).

    Binary (C == 2): sensitivity/specificity/F1/ROC-AUC of ``positive_class`` (default: index
    C - 1). Multi-class: macro averages over classes of one-vs-rest values (classes absent from
    ``y_true`` are left out of the averages). All rates are fractions in [0, 1] or None.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be N x C with N = {len(y_true)}, got {probs.shape}")
    n, c = probs.shape
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    y_pred = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, c)
    per_class = {names[k]: {**_one_vs_rest(cm, k),
                            "roc_auc": roc_auc(y_true == k, probs[:, k]) if n else None,
                            "support": int(cm[k].sum())} for k in range(c)}
    out: dict[str, Any] = {
        "n": int(n),
        "accuracy": _ratio(np.trace(cm), n),
        "confusion_matrix": cm.tolist(),
        "class_names": names,
        "per_class": per_class,
    }
    if c == 2:
        pos = c - 1 if positive_class is None else int(positive_class)
        p = per_class[names[pos]]
        out.update(positive_class=names[pos], average="binary", f1=p["f1"],
                   sensitivity=p["sensitivity"], specificity=p["specificity"], roc_auc=p["roc_auc"])
    else:
        present = [names[k] for k in range(c) if cm[k].sum() > 0]
        out.update(positive_class=None, average="macro",
                   f1=_macro([per_class[k]["f1"] for k in present]),
                   sensitivity=_macro([per_class[k]["sensitivity"] for k in present]),
                   specificity=_macro([per_class[k]["specificity"] for k in present]),
                   roc_auc=_macro([per_class[k]["roc_auc"] for k in present]))
    return out
