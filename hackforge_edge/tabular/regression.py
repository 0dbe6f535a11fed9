"""Linear-regression transfer on standardised features (see :mod:`.strategies`)."""

from __future__ import annotations

import numpy as np

from hackforge_edge.tabular import closed_form as cf
from hackforge_edge.tabular.fit import LAMBDAS, RHOS, TAUS, TabularFit, cv_choose


def _ridge(coef: np.ndarray, intercept: float, d: int):
    from sklearn.linear_model import Ridge

    m = Ridge()
    m.coef_, m.intercept_, m.n_features_in_ = np.asarray(coef, np.float64), float(intercept), d
    return m


def _mse(w: np.ndarray, X: np.ndarray, y: np.ndarray, x_mean: np.ndarray, y_mean: float) -> float:
    return float(np.mean((y - (y_mean + (X - x_mean) @ w)) ** 2))


def _scratch_coef(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=LAMBDAS).fit(X, y).coef_


def fit_regression(strategy: str, Xs, ys, Xt, yt, splits, seed: int) -> TabularFit:
    from sklearn.covariance import LedoitWolf
    from sklearn.linear_model import BayesianRidge

    d = Xt.shape[1]
    src = BayesianRidge().fit(Xs, ys)                 # source posterior N(m_s, S_s), noise 1/alpha_
    w_s, S_s, noise_var = src.coef_, src.sigma_, 1.0 / src.alpha_

    def centred(idx):
        X, y = Xt[idx], yt[idx]
        return X - X.mean(0), y - y.mean(), X.mean(0), y.mean()

    def fold_loss(make_w):
        def score(value, tr, va):
            Xc, yc, xm, ym = centred(tr)
            return _mse(make_w(value, Xc, yc, tr), Xt[va], yt[va], xm, ym)
        return score

    chosen: dict = {"source": {"model": "sklearn BayesianRidge", "noise_var": float(noise_var)}}
    predictive = None
    Xc, yc, xm, ym = centred(np.arange(len(yt)))
    if strategy == "scratch":
        from sklearn.linear_model import RidgeCV

        ref = RidgeCV(alphas=LAMBDAS).fit(Xt, yt)
        chosen["alpha"] = float(ref.alpha_)
        return TabularFit(strategy, _ridge(ref.coef_, ref.intercept_, d), chosen, iterations=0)
    if strategy == "regularized":
        lam, _ = cv_choose(LAMBDAS, fold_loss(lambda lam, X, y, _i: cf.regularized_linear(X, y, w_s, lam)), splits)
        w = cf.regularized_linear(Xc, yc, w_s, lam)
        chosen["lambda"] = lam
    elif strategy == "bayesian":
        def post(tau, X, y):
            return cf.gaussian_posterior(X, y, w_s, tau * S_s, noise_var)
        tau, _ = cv_choose(TAUS, fold_loss(lambda tau, X, y, _i: post(tau, X, y)[0]), splits)
        w, cov = post(tau, Xc, yc)
        chosen["tau"] = tau

        def predictive(X):   # X standardised; predictive std includes the noise
            return ym + (X - xm) @ w, np.sqrt(noise_var + np.einsum("ij,jk,ik->i", X - xm, cov, X - xm))
    elif strategy == "covariance":
        Sigma_s = LedoitWolf().fit(Xs).covariance_

        def blended(rho, X, y):
            w_cov = cf.covariance_mapped(LedoitWolf().fit(X).covariance_, Sigma_s, w_s)
            return (1 - rho) * w_cov + rho * (_scratch_coef(X, y) if rho else 0.0)
        rho, _ = cv_choose(RHOS, fold_loss(lambda rho, X, y, _i: blended(rho, X, y)), splits)
        w = blended(rho, Xc, yc)
        chosen["rho"] = rho
    else:  # statmap
        w = cf.statmap(Xt, yt)
    return TabularFit(strategy, _ridge(w, ym - xm @ w, d), chosen, predictive=predictive, iterations=0)
