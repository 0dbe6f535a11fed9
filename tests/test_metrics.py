"""Metrics: hand-checked values, ties, single-class test sets (null, never NaN)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackforge_edge.training.metrics import average_ranks, classification_metrics, roc_auc


def _probs(p_pos):
    p = np.asarray(p_pos, dtype=float)
    return np.stack([1 - p, p], axis=1)


def test_binary_metrics_by_hand():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.2, 0.9, 0.8, 0.3, 0.7]  # predictions: 0 1 0 1 1 0 1
    m = classification_metrics(y, _probs(p), class_names=["benign", "malignant"])
    # tp=3 fn=1 fp=1 tn=2
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(6 / 8)
    # pairs (pos, neg) ranked correctly: 0.9,0.8,0.7 beat all 3 negatives; 0.3 beats 0.1, 0.2
    assert m["roc_auc"] == pytest.approx((3 * 3 + 2) / 12)
    assert m["positive_class"] == "malignant"


def test_positive_class_can_be_chosen():
    m = classification_metrics([0, 0, 1], _probs([0.2, 0.7, 0.9]), positive_class=0)
    assert m["sensitivity"] == pytest.approx(0.5) and m["specificity"] == pytest.approx(1.0)


def test_roc_auc_ties_and_agreement_with_pairs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60).astype(bool)
    s = np.round(rng.random(60), 1)  # many ties
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc_auc(y, s) == pytest.approx(pairs)
    assert average_ranks(np.array([3.0, 1.0, 3.0])).tolist() == [2.5, 1.0, 2.5]


def test_single_class_test_set_gives_null_not_nan():
    m = classification_metrics([1, 1, 1], _probs([0.9, 0.2, 0.8]))
    assert m["roc_auc"] is None and m["specificity"] is None
    assert m["sensitivity"] == pytest.approx(2 / 3)
    json.dumps(m, allow_nan=False)  # must serialise strictly


def test_multiclass_macro_averages():
    y = [0, 1, 2, 2]
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    m = classification_metrics(y, probs)
    assert m["average"] == "macro" and m["accuracy"] == pytest.approx(0.75)
    assert m["sensitivity"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["roc_auc"] == pytest.approx(np.mean([1.0, 1.0, 1.0]))
    json.dumps(m, allow_nan=False)
