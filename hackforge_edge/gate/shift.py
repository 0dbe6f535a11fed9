"""Distribution-shift statistics between a source and a target sample (rows = examples).

Shift says that two domains differ, not that transfer from one to the other hurts: these
numbers are evidence in the gate report, never the decision (see ``decide.py``).

- MMD^2: unbiased U-statistic with an RBF kernel whose bandwidth is the median pairwise
  distance of the pooled sample; p-value by permutation (Gretton et al., JMLR 2012).
  Written here because no maintained package exposes the unbiased statistic with a
  permutation test on numpy arrays (alibi-detect pulls in TensorFlow/PyTorch backends).
- Proxy A-distance: 2 (1 - 2 err) of a cross-validated domain classifier (Ben-David et al.
  2007), err clipped to min(err, 1 - err). A linear classifier by default: a flexible one
  saturates at 2 on almost any real shift.
- Per-feature two-sample KS tests (``scipy.stats.ks_2samp(axis=0)``) with a Benjamini-Hochberg
  correction (``scipy.stats.false_discovery_control``); the statistic is the effect size.
- Linear CKA (Kornblith et al. 2019) between two representations of THE SAME examples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hackforge_edge.errors import DataError

# Smallest sample per domain for which the permutation test can reach p < 0.01:
# C(n + m, n) >= 100 distinct splits needs n = m >= 5 (C(10, 5) = 252).
MIN_PER_DOMAIN_PERMUTATION = 5


def _as_2d(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"{what}: expected an N x D array of features, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what}: features contain NaN or infinity")
    return a


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_2d(x, "source"), _as_2d(y, "target")
    if x.shape[1] != y.shape[1]:
        raise DataError(f"source has {x.shape[1]} features and target {y.shape[1]}: "
                        "they must come from the same feature extractor")
    return x, y


def _sq_dists(z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", z, z)
    d = sq[:, None] + sq[None, :] - 2.0 * z @ z.T
    return np.maximum(d, 0.0)


def median_bandwidth(z: np.ndarray) -> float:
    """Median pairwise Euclidean distance of the rows of ``z`` (off-diagonal); 1.0 if all equal."""
    d = np.sqrt(_sq_dists(_as_2d(z, "features")))
    off = d[~np.eye(len(d), dtype=bool)]
    med = float(np.median(off)) if off.size else 0.0
    return med if med > 0 else 1.0


def _mmd2_from_kernel(k: np.ndarray, n: int) -> float:
    """Unbiased MMD^2 from the pooled kernel matrix whose first ``n`` rows are sample X."""
    m = len(k) - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


@dataclass(frozen=True)
class MMDResult:
    """Unbiased MMD^2 (kernel units: an RBF kernel is in [0, 1]) and its permutation p-value."""

    mmd2: float
    p_value: float
    bandwidth: float  # RBF sigma, in feature units (median heuristic unless given)
    n_permutations: int
    n_source: int
    n_target: int
    kernel: str = "rbf exp(-d^2 / (2 sigma^2)), sigma = median pooled pairwise distance"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mmd_test(x: np.ndarray, y: np.ndarray, *, n_permutations: int = 200, seed: int = 0,
             bandwidth: float | None = None) -> MMDResult:
    """MMD^2_u between rows of ``x`` and ``y`` with a permutation p-value.

    p = (1 + #{permuted MMD^2 >= observed}) / (1 + n_permutations), so it is never 0.
    Needs at least MIN_PER_DOMAIN_PERMUTATION rows in each sample.
    """
    x, y = _pair(x, y)
    n, m = len(x), len(y)
    if min(n, m) < MIN_PER_DOMAIN_PERMUTATION:
        raise DataError(f"the MMD permutation test needs at least {MIN_PER_DOMAIN_PERMUTATION} "
                        f"examples per domain (C(n+m, n) >= 100 splits so that p < 0.01 is "
                        f"reachable); got {n} source and {m} target")
    if n_permutations < 1:
        raise DataError(f"n_permutations must be >= 1, got {n_permutations}")
    z = np.concatenate([x, y])
    sigma = float(bandwidth) if bandwidth else median_bandwidth(z)
    k = np.exp(-_sq_dists(z) / (2.0 * sigma * sigma))
    observed = _mmd2_from_kernel(k, n)
    rng = np.random.default_rng([seed, 2012])
    hits = 0
    for _ in range(int(n_permutations)):
        p = rng.permutation(n + m)
        if _mmd2_from_kernel(k[np.ix_(p, p)], n) >= observed:
            hits += 1
    return MMDResult(observed, (1 + hits) / (1 + n_permutations), sigma, int(n_permutations), n, m)


@dataclass(frozen=True)
class PADResult:
    """Proxy A-distance in [0, 2] from the held-out error of a domain classifier."""

    pad: float
    domain_error: float  # out-of-fold error, clipped to min(err, 1 - err)
    classifier: str
    n_folds: int
    n_source: int
    n_target: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def proxy_a_distance(x: np.ndarray, y: np.ndarray, *, n_folds: int = 5, seed: int = 0,
                     classifier: str = "logistic") -> PADResult:
    """PAD = 2 (1 - 2 err), err = out-of-fold error of a domain classifier (stratified k-fold).

    ``classifier``: "logistic" (standardised features, L2 logistic regression, C = 1) or
    "mlp" (one hidden layer of 64; saturates sooner). Needs ``n_folds`` rows per domain.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _pair(x, y)
    n, m = len(x), len(y)
    if n_folds < 2:
        raise DataError(f"the domain classifier needs n_folds >= 2, got {n_folds}")
    if min(n, m) < n_folds:
        raise DataError(f"the cross-validated domain classifier needs at least {n_folds} examples "
                        f"per domain ({n_folds}-fold); got {n} source and {m} target")
    if classifier == "logistic":
        clf = LogisticRegression(C=1.0, max_iter=2000)
    elif classifier == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
    else:
        raise DataError(f"unknown domain classifier {classifier!r} (valid: logistic, mlp)")
    z = np.concatenate([x, y])
    d = np.r_[np.zeros(n, int), np.ones(m, int)]
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(make_pipeline(StandardScaler(), clf), z, d, cv=folds)
    err = float(np.mean(pred != d))
    err = min(err, 1.0 - err)
    return PADResult(2.0 * (1.0 - 2.0 * err), err, classifier, n_folds, n, m)


@dataclass(frozen=True)
class KSResult:
    """Per-feature KS tests, BH-corrected. Statistics are effect sizes in [0, 1]."""

    n_features: int
    n_shifted: int  # features with BH-adjusted p < fdr
    fdr: float
    median_statistic: float
    max_statistic: float
    top_features: list[dict[str, float]]  # up to 5: index, statistic, adjusted p

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ks_shift(x: np.ndarray, y: np.ndarray, *, fdr: float = 0.05) -> KSResult:
    """Two-sample KS per feature (column), Benjamini-Hochberg adjusted at false-discovery rate
    ``fdr``. Meant for continuous features: discrete ones need a chi-squared test instead."""
    from scipy.stats import false_discovery_control, ks_2samp

    x, y = _pair(x, y)
    if min(len(x), len(y)) < 2:
        raise DataError(f"the KS test needs at least 2 examples per domain; got {len(x)} source "
                        f"and {len(y)} target")
    res = ks_2samp(x, y, axis=0)
    stat = np.atleast_1d(res.statistic).astype(float)
    p = np.nan_to_num(np.atleast_1d(res.pvalue).astype(float), nan=1.0)
    adj = false_discovery_control(p, method="bh")
    order = np.argsort(-stat)[:5]
    top = [{"feature": int(i), "statistic": float(stat[i]), "p_adjusted": float(adj[i])} for i in order]
    return KSResult(int(stat.size), int(np.sum(adj < fdr)), float(fdr), float(np.median(stat)),
                    float(stat.max()), top)


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear CKA = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred X, Y.

    Rows of ``x`` and ``y`` MUST be the same examples (e.g. target images through two models);
    between different examples it measures nothing. ``debiased``: the unbiased HSIC estimator
    (Song et al. 2012, as in Kornblith et al.'s reference code); needs at least 4 rows.
    """
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    if len(x) != len(y):
        raise DataError(f"linear CKA compares the same examples through two models: x has "
                        f"{len(x)} rows and y {len(y)}")
    if not debiased:
        x = x - x.mean(0)
        y = y - y.mean(0)
        num = np.linalg.norm(y.T @ x) ** 2
        den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
        return float(num / den) if den > 0 else 0.0
    n = len(x)
    if n < 4:
        raise DataError(f"debiased CKA needs at least 4 examples, got {n}")

    def hsic_u(k: np.ndarray, l: np.ndarray) -> float:
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l, 0.0)
        one = np.ones(n)
        t = np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) \
            - 2.0 * (one @ k @ l @ one) / (n - 2)
        return float(t / (n * (n - 3)))

    kx, ky = x @ x.T, y @ y.T
    den = np.sqrt(hsic_u(kx, kx) * hsic_u(ky, ky))
    return float(hsic_u(kx, ky) / den) if den > 0 else 0.0
