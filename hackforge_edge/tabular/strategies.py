"""Tabular transfer strategies: each fits a plain scikit-learn pipeline (StandardScaler + Ridge
or LogisticRegression with its coefficients set), so the result composes with scikit-learn
tools and exports with skl2onnx.

    scratch      scikit-learn RidgeCV / LogisticRegressionCV on the target alone (reference)
    regularized  toward the source weights: lam/2 ||w - w_s||^2 (closed form / L-BFGS)
    bayesian     the source posterior as the target prior (conjugate Gaussian / Laplace),
                 tempered by tau; predictive uncertainty in the metrics
    covariance   w_t = Sigma_t^-1 Sigma_s w_s (Ledoit-Wolf), blended with scratch by rho
    statmap      w_j = Cov(x_j, y) / Var(x_j) on the target, zero iterations

lam, tau and rho are chosen by K-fold cross-validation on the target training split (mean
squared error for regression, log-loss for classification); the chosen values are returned.
"""

from __future__ import annotations

import numpy as np

from hackforge_edge.errors import DataError, UsageError
from hackforge_edge.tabular.classification import fit_classification
from hackforge_edge.tabular.data import TabularTask
from hackforge_edge.tabular.fit import TabularFit
from hackforge_edge.tabular.regression import fit_regression

TABULAR_STRATEGIES = ("scratch", "regularized", "bayesian", "covariance", "statmap")


def cv_folds(task: TabularTask, asked: int | None) -> int:
    """Folds for the target training split: ``asked``, or min(5, smallest class count)."""
    n = len(task.train.y)
    smallest = (int(np.bincount(task.train.y).min()) if task.problem == "classification" else n)
    if asked is not None:
        if asked < 2:
            raise UsageError(f"--cv-folds must be >= 2, got {asked}")
        if smallest < asked:
            what = "rows of its rarest class" if task.problem == "classification" else "rows"
            raise DataError(f"{asked}-fold cross-validation needs at least {asked} {what} in the target "
                            f"training split; it has {smallest} (lower --cv-folds or raise --data-fraction)")
        return asked
    k = min(5, smallest)
    if k < 2:
        raise DataError(f"cross-validation needs at least 2 rows per class in the target training "
                        f"split; it has {smallest}")
    return k


def _splits(task: TabularTask, k: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if task.problem == "classification" else KFold
    return list(cls(n_splits=k, shuffle=True, random_state=seed).split(task.train.X, task.train.y))


def fit_strategy(task: TabularTask, strategy: str, *, seed: int = 0, cv: int | None = None) -> TabularFit:
    """Fit ``strategy`` on ``task`` (source table + target training split)."""
    from sklearn.preprocessing import StandardScaler

    if strategy not in TABULAR_STRATEGIES:
        raise UsageError(f"unknown tabular strategy {strategy!r} (valid: {', '.join(TABULAR_STRATEGIES)})")
    k = cv_folds(task, cv)
    scaler = StandardScaler().fit(task.train.X)
    Xs, Xt = scaler.transform(task.source.X), scaler.transform(task.train.X)
    if task.problem == "regression":
        fit = fit_regression(strategy, Xs, task.source.y, Xt, task.train.y, _splits(task, k, seed), seed)
    else:
        K = len(task.class_names or [])
        fit = fit_classification(strategy, Xs, task.source.y, Xt, task.train.y, K,
                                 _splits(task, k, seed), seed)
    fit.pipeline = _pipeline(scaler, fit.pipeline)
    fit.chosen["cv_folds"] = k
    if fit.predictive is not None:
        inner = fit.predictive
        fit.predictive = lambda X_raw: inner(scaler.transform(X_raw))
    return fit


def _pipeline(scaler, model):
    from sklearn.pipeline import Pipeline

    return Pipeline([("scaler", scaler), ("model", model)])
