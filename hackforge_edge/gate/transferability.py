"""Label-aware transferability scores of frozen features on the target's labelled data.

Each estimates how well a candidate start will do on the target task, without training it.
None is on PyPI under its name, so they are written here from the papers and each is tested
against its published formula on a small fixed example (tests/test_gate_stats.py):

- LogME (You et al., ICML 2021): maximum log marginal evidence per example of a Bayesian linear
  regression from features to each one-hot label column, averaged over classes. Higher is better.
- LEEP (Nguyen et al., ICML 2020): mean log-likelihood of the "expected empirical predictor"
  built from the SOURCE head's softmax on target images; needs a source head. Higher is better.
- H-score (Bao et al., ICIP 2019): tr(cov(f)^-1 cov(E[f|y])); and its shrunk variant
  (Ibrahim et al., ICLR 2023) with a Ledoit-Wolf covariance (scikit-learn's estimator).
- Cross-validated k-NN / linear-probe accuracy on frozen features (scikit-learn), which a
  large study (Sorkhei et al. 2025) found as good a predictor as any. Fold scores are returned
  so that two starts can be compared on the same folds (paired).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hackforge_edge.errors import DataError


def _features(f: np.ndarray) -> np.ndarray:
    a = np.asarray(f, dtype=np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise DataError(f"features must be a finite N x D array, got shape {a.shape}")
    return a


def _labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"labels must be a vector of {n} class indices, got shape {y.shape}")
    if len(np.unique(y)) < 2:
        raise DataError("transferability scores need at least 2 classes in the target labels")
    return y.astype(np.int64)


def log_evidence(f: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """log p(t | F, alpha, beta) of Bayesian linear regression t = F w + noise, with prior
    w ~ N(0, I/alpha) and noise precision beta (MacKay 1992; LogME paper eq. 2). In nats."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ t)
    _, logdet = np.linalg.slogdet(a)
    return float(n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                 - beta / 2 * np.sum((f @ m - t) ** 2) - alpha / 2 * m @ m - logdet / 2)


def logme(features: np.ndarray, labels: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6) -> float:
    """LogME: mean over classes of max_{alpha, beta} log p(onehot_c | F) / N (nats per example).

    The maximum is found with the paper's fixed-point updates (gamma = sum s/(s + alpha/beta),
    alpha = gamma / m'm, beta = (N - gamma) / ||F m - t||^2) on the eigenvalues s of F'F.
    """
    f = _features(features)
    y = _labels(labels, len(f))
    n, d = f.shape
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    scores = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        proj = v.T @ (f.T @ t)  # F't in the eigenbasis
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            m = v @ (beta * proj / (alpha + beta * s))
            gamma = float(np.sum(beta * s / (alpha + beta * s)))
            alpha_new = gamma / max(float(m @ m), 1e-300)
            beta_new = max(n - gamma, 1e-12) / max(float(np.sum((f @ m - t) ** 2)), 1e-300)
            done = abs(alpha_new / beta_new - alpha / beta) <= tol * (alpha / beta)
            alpha, beta = alpha_new, beta_new
            if done:
                break
        m = v @ (beta * proj / (alpha + beta * s))
        ev = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
              - beta / 2 * np.sum((f @ m - t) ** 2) - alpha / 2 * m @ m
              - 0.5 * np.sum(np.log(alpha + beta * s)))
        scores.append(ev / n)
    return float(np.mean(scores))


def leep(source_probs: np.ndarray | None, labels: np.ndarray) -> float:
    """LEEP = 1/n sum_i log sum_z P(y_i | z) theta(x_i)_z, with P(y, z) = 1/n sum_i theta(x_i)_z
    [y_i = y] and P(y | z) = P(y, z) / P(z). ``source_probs``: N x Z softmax of the source head."""
    if source_probs is None:
        raise DataError("LEEP needs the source head's softmax on target images, and this start "
                        "has no source head (use LogME, H-score or the k-NN probe for it)")
    theta = _features(source_probs)
    y = _labels(labels, len(theta))
    if np.any(theta < 0) or not np.allclose(theta.sum(1), 1.0, atol=1e-4):
        raise DataError("LEEP needs probabilities (rows of the source softmax summing to 1)")
    classes = np.unique(y)
    onehot = (y[:, None] == classes[None, :]).astype(np.float64)  # N x C
    joint = onehot.T @ theta / len(y)  # C x Z
    cond = joint / np.clip(joint.sum(0, keepdims=True), 1e-300, None)  # P(y | z)
    eep = theta @ cond.T  # N x C
    picked = eep[np.arange(len(y)), np.searchsorted(classes, y)]
    return float(np.mean(np.log(np.clip(picked, 1e-300, None))))


def _class_mean_rows(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = np.empty_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    return g


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score = tr(pinv(cov(f)) cov(E[f | y])) with sample covariances (ddof = 1)."""
    f = _features(features)
    y = _labels(labels, len(f))
    covf = np.atleast_2d(np.cov(f, rowvar=False))
    covg = np.atleast_2d(np.cov(_class_mean_rows(f, y), rowvar=False))
    return float(np.trace(np.linalg.pinv(covf, rcond=1e-15, hermitian=True) @ covg))


def shrunk_h_score(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(H-score with a Ledoit-Wolf covariance, the shrinkage alpha in [0, 1]).

    H_alpha = tr(Sigma_alpha^-1 (1 - alpha) cov(E[f | y])), Sigma_alpha = (1 - alpha) Sigma +
    alpha tr(Sigma)/d I from ``sklearn.covariance.LedoitWolf`` (maximum-likelihood covariances,
    ddof = 0, as that estimator uses). Stable when N is small against the feature dimension.
    """
    from sklearn.covariance import LedoitWolf

    f = _features(features)
    y = _labels(labels, len(f))
    lw = LedoitWolf().fit(f)
    g = _class_mean_rows(f, y)
    g = g - g.mean(0)
    covg = g.T @ g / len(g)
    alpha = float(lw.shrinkage_)
    return float(np.trace(np.linalg.solve(lw.covariance_, (1 - alpha) * covg))), alpha


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated accuracy (fraction) of a probe on frozen features, per fold."""

    probe: str
    mean_accuracy: float
    fold_accuracies: list[float]
    n_splits: int
    n_repeats: int
    n_train_per_fold: int
    n_test_per_fold: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def min_examples_for_cv(n_splits: int) -> int:
    """Fewest examples of the rarest class that stratified ``n_splits``-fold CV accepts."""
    return int(n_splits)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, *, probe: str = "knn", k: int = 5,
                   n_splits: int = 5, n_repeats: int = 2, seed: int = 0) -> ProbeResult:
    """Repeated stratified k-fold accuracy of a probe on standardised frozen features.

    ``probe``: "knn" (k nearest neighbours, Euclidean) or "linear" (L2 logistic regression,
    C = 1). The folds depend only on (labels, n_splits, n_repeats, seed): two starts scored
    with the same arguments are compared on the same folds.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = _features(features)
    y = _labels(labels, len(f))
    rarest = int(np.bincount(y).min() if y.min() >= 0 else 0)
    need = min_examples_for_cv(n_splits)
    if rarest < need:
        raise DataError(f"the cross-validated probe needs at least {need} labelled target "
                        f"examples per class ({n_splits}-fold); the rarest class has {rarest}")
    if probe == "knn":
        n_train = len(y) - -(-len(y) // n_splits)
        clf = KNeighborsClassifier(n_neighbors=max(1, min(int(k), n_train)))
    elif probe == "linear":
        clf = LogisticRegression(C=1.0, max_iter=2000)
    else:
        raise DataError(f"unknown probe {probe!r} (valid: knn, linear)")
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    scores = cross_val_score(make_pipeline(StandardScaler(), clf), f, y, cv=cv, scoring="accuracy")
    n_test = len(y) // n_splits
    return ProbeResult(probe, float(np.mean(scores)), [float(s) for s in scores], n_splits,
                       n_repeats, len(y) - n_test, n_test)
