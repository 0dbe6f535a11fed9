"""Logistic (softmax) transfer on standardised features (see :mod:`.strategies`).

Parameters live in softmax form theta = [W (K x d), b (K)]; the scikit-learn estimator gets
the equivalent coefficients (binary: w1 - w0, b1 - b0; multiclass: W, b).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from hackforge_edge.errors import UsageError
from hackforge_edge.tabular import closed_form as cf
from hackforge_edge.tabular.fit import LOGISTIC_LAMBDAS as LAMBDAS
from hackforge_edge.tabular.fit import RHOS, TAUS, TabularFit, cv_choose

SOURCE_WEIGHT_PREC = 1.0   # the source fit's L2 prior: scikit-learn's default C = 1


def to_sklearn(theta: np.ndarray, K: int, d: int):
    from sklearn.linear_model import LogisticRegression

    Wb = theta.reshape(K, d + 1)
    W, b = Wb[:, :d], Wb[:, d]
    m = LogisticRegression()
    if K == 2:
        m.coef_, m.intercept_ = (W[1] - W[0])[None, :], np.array([b[1] - b[0]])
    else:
        m.coef_, m.intercept_ = W - W.mean(0), b - b.mean()
    m.classes_, m.n_features_in_ = np.arange(K), d
    return m


def from_sklearn(model, K: int, d: int) -> np.ndarray:
    """scikit-learn coefficients -> softmax theta (binary: class 0 at zero)."""
    if K == 2:
        W = np.vstack([np.zeros(d), model.coef_[0]])
        b = np.array([0.0, model.intercept_[0]])
    else:
        W, b = model.coef_, model.intercept_
    return np.hstack([W, b[:, None]]).ravel()


def log_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray, K: int) -> float:
    Xb = np.hstack([X, np.ones((len(X), 1))])
    return float(-log_softmax(Xb @ theta.reshape(K, -1).T, axis=1)[np.arange(len(y)), y].mean())


def _scratch(X, y, K, splits):
    from sklearn.linear_model import LogisticRegressionCV

    ref = LogisticRegressionCV(Cs=[1 / lam for lam in LAMBDAS], cv=splits, scoring="neg_log_loss",
                               max_iter=5000).fit(X, y)
    return ref


def fit_classification(strategy: str, Xs, ys, Xt, yt, K: int, splits, seed: int) -> TabularFit:
    from sklearn.covariance import LedoitWolf

    d = Xt.shape[1]
    base_prec = cf.isotropic_prior(K, d, SOURCE_WEIGHT_PREC)
    th_s = cf.fit_softmax_map(Xs, ys, K, np.zeros(K * (d + 1)), base_prec)
    chosen: dict = {"source": {"model": "softmax MAP, L2 precision 1 (C = 1)",
                               "source_log_loss": log_loss(th_s, Xs, ys, K)}}

    def fold_loss(make_theta):
        def score(value, tr, va):
            return log_loss(make_theta(value, Xt[tr], yt[tr]), Xt[va], yt[va], K)
        return score

    if strategy == "scratch":
        splits_for_sklearn = [(tr, va) for tr, va in splits]
        ref = _scratch(Xt, yt, K, splits_for_sklearn)
        chosen["C"] = float(np.ravel(ref.C_)[0])
        return TabularFit(strategy, to_sklearn(from_sklearn(ref, K, d), K, d), chosen,
                          iterations=int(np.max(ref.n_iter_)))
    predictive = None
    if strategy == "regularized":
        def reg(lam, X, y):
            return cf.fit_softmax_map(X, y, K, th_s, cf.isotropic_prior(K, d, lam))
        lam, _ = cv_choose(LAMBDAS, fold_loss(reg), splits)
        theta = reg(lam, Xt, yt)
        chosen["lambda"] = lam
    elif strategy == "bayesian":
        H_s = cf.softmax_hessian(th_s, Xs, K) + base_prec      # Laplace: source posterior precision

        def post(tau, X, y):
            return cf.fit_softmax_map(X, y, K, th_s, H_s / tau)
        tau, _ = cv_choose(TAUS, fold_loss(post), splits)
        theta = post(tau, Xt, yt)
        cov = np.linalg.inv(cf.softmax_hessian(theta, Xt, K) + H_s / tau)
        chosen["tau"] = tau

        def predictive(X):
            return cf.laplace_predictive(theta, cov, X, K)
    elif strategy == "covariance":
        Sigma_s = LedoitWolf().fit(Xs).covariance_

        def blended(rho, X, y):
            W_s = th_s.reshape(K, d + 1)
            W = cf.covariance_mapped(LedoitWolf().fit(X).covariance_, Sigma_s, W_s[:, :d].T).T
            mapped = _fit_biases(np.hstack([W, W_s[:, d:]]).ravel(), X, y, K)
            if not rho:
                return mapped
            return (1 - rho) * mapped + rho * _plain_logistic(X, y, K)
        rho, _ = cv_choose(RHOS, fold_loss(blended), splits)
        theta = blended(rho, Xt, yt)
        chosen["rho"] = rho
    else:
        theta = _statmap_theta(Xt, yt, K)
    return TabularFit(strategy, to_sklearn(theta, K, d), chosen, predictive=predictive,
                      iterations=0 if strategy == "statmap" else None)


def _plain_logistic(X, y, K: int) -> np.ndarray:
    """The scratch end of the covariance blend: softmax MAP with scikit-learn's default C = 1."""
    d = X.shape[1]
    return cf.fit_softmax_map(X, y, K, np.zeros(K * (d + 1)), cf.isotropic_prior(K, d, SOURCE_WEIGHT_PREC))


def _fit_biases(theta: np.ndarray, X, y, K: int) -> np.ndarray:
    """Refit the K biases with the weights fixed (the covariance map moves only weights)."""
    d = X.shape[1]
    Wb = theta.reshape(K, d + 1).copy()

    def obj(b):
        Wb[:, d] = b
        return log_loss(Wb.ravel(), X, y, K)
    Wb[:, d] = minimize(obj, Wb[:, d], method="L-BFGS-B").x
    return Wb.ravel()


def _statmap_theta(X, y, K: int) -> np.ndarray:
    """Binary only: w = Cov(x, y) / Var(x), then a closed-form 1-D linear discriminant on the
    score s = X w: logit = a (s - (m0 + m1) / 2) + log(pi1 / pi0), a = (m1 - m0) / var_within."""
    if K != 2:
        raise UsageError("statmap supports binary classification and regression, not "
                         f"{K}-class problems")
    w = cf.statmap(X, y.astype(np.float64))
    s = X @ w
    m0, m1 = s[y == 0].mean(), s[y == 1].mean()
    var = np.concatenate([s[y == 0] - m0, s[y == 1] - m1]).var()
    a = (m1 - m0) / var if var > 0 else 1.0
    prior = np.log(np.mean(y == 1) / np.mean(y == 0))
    d = X.shape[1]
    theta = np.zeros((2, d + 1))
    theta[1, :d], theta[1, d] = a * w, prior - a * (m0 + m1) / 2
    return theta.ravel()
