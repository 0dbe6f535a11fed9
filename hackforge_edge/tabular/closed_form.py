"""The transfer estimators for linear and logistic models, written from their formulas.

No maintained package fits a logistic model with a Gaussian prior centred on other weights
(scikit-learn's penalties are centred on zero), nor regularized/covariance transfer, so these
few lines are ours; everything generic (L-BFGS, Ledoit-Wolf shrinkage, BayesianRidge's
evidence maximisation) comes from scipy and scikit-learn. Features are standardised (target
training statistics) and, for linear models, centred, before anything here is called; the
intercept is handled by the caller.

Linear (X centred [n, d], y centred [n]):
  regularized   w = (X'X + lam I)^-1 (X'y + lam w_s)
  posterior     N(m, S): S = (S0^-1 + X'X / s2)^-1, m = S (S0^-1 m0 + X'y / s2)
  covariance    w = Sigma_t^-1 Sigma_s w_s   (the cross-covariance Sigma w carries over)
  statmap       w_j = Cov(x_j, y) / Var(x_j)

Logistic (softmax over K classes, parameters theta = [W (K x d), b (K)] flattened):
  MAP of  NLL(theta) + 1/2 (theta - theta0)' P (theta - theta0)   by L-BFGS (scipy), with the
  Hessian  sum_i (diag p_i - p_i p_i') (x) [x_i, 1][x_i, 1]' + P  for the Laplace approximation.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

# ------------------------------------------------------------------------------- linear


def regularized_linear(X: np.ndarray, y: np.ndarray, w_source: np.ndarray, lam: float) -> np.ndarray:
    """argmin ||y - Xw||^2 + lam ||w - w_source||^2 (closed form)."""
    d = X.shape[1]
    return np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y + lam * w_source)


def gaussian_posterior(X: np.ndarray, y: np.ndarray, prior_mean: np.ndarray, prior_cov: np.ndarray,
                       noise_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate Gaussian linear model: posterior mean and covariance of w."""
    prior_prec = np.linalg.inv(prior_cov)
    prec = prior_prec + X.T @ X / noise_var
    cov = np.linalg.inv(prec)
    cov = (cov + cov.T) / 2
    mean = cov @ (prior_prec @ prior_mean + X.T @ y / noise_var)
    return mean, cov


def covariance_mapped(Sigma_t: np.ndarray, Sigma_s: np.ndarray, w_source: np.ndarray) -> np.ndarray:
    """w_t = Sigma_t^-1 Sigma_s w_s (shrunk covariances keep Sigma_t invertible)."""
    return np.linalg.solve(Sigma_t, Sigma_s @ w_source)


def statmap(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Moment-based weights w_j = Cov(x_j, y) / Var(x_j): zero iterations."""
    Xc, yc = X - X.mean(0), y - y.mean()
    var = (Xc ** 2).mean(0)
    return (Xc * yc[:, None]).mean(0) / np.where(var > 0, var, 1.0)


# ----------------------------------------------------------------------------- logistic


def _design(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


def softmax_nll(theta: np.ndarray, Xb: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log-likelihood and gradient; ``Y`` one-hot [n, K], ``Xb`` with a ones column."""
    K = Y.shape[1]
    Wb = theta.reshape(K, Xb.shape[1])
    Z = Xb @ Wb.T
    nll = -float((Y * log_softmax(Z, axis=1)).sum())
    grad = (softmax(Z, axis=1) - Y).T @ Xb
    return nll, grad.ravel()


def fit_softmax_map(X: np.ndarray, y: np.ndarray, K: int, prior_mean: np.ndarray,
                    prior_prec: np.ndarray) -> np.ndarray:
    """MAP of a softmax model under the Gaussian prior N(prior_mean, prior_prec^-1).

    ``prior_prec`` is a full [p, p] matrix (p = K (d + 1)). Starts at the prior mean.
    """
    Xb, Y = _design(X), np.eye(K)[y]

    def objective(theta):
        nll, g = softmax_nll(theta, Xb, Y)
        diff = theta - prior_mean
        pd = prior_prec @ diff
        return nll + 0.5 * float(diff @ pd), g + pd

    res = minimize(objective, prior_mean.copy(), jac=True, method="L-BFGS-B",
                   options={"maxiter": 1000, "gtol": 1e-6})
    return res.x


def softmax_hessian(theta: np.ndarray, X: np.ndarray, K: int) -> np.ndarray:
    """Hessian of the NLL (without the prior) at ``theta``: sum_i (diag p - pp') (x) x x'."""
    Xb = _design(X)
    P = softmax(Xb @ theta.reshape(K, Xb.shape[1]).T, axis=1)
    p = K * Xb.shape[1]
    H = np.zeros((p, p))
    for k in range(K):
        for j in range(K):
            w = P[:, k] * ((k == j) - P[:, j])
            H[k * Xb.shape[1]:(k + 1) * Xb.shape[1], j * Xb.shape[1]:(j + 1) * Xb.shape[1]] = (Xb * w[:, None]).T @ Xb
    return H


def isotropic_prior(K: int, d: int, weight_prec: float, bias_prec: float = 1e-6) -> np.ndarray:
    """Diagonal prior precision: ``weight_prec`` on weights, a nearly flat prior on biases."""
    per_class = np.r_[np.full(d, weight_prec), bias_prec]
    return np.diag(np.tile(per_class, K))


def softmax_proba(theta: np.ndarray, X: np.ndarray, K: int) -> np.ndarray:
    Xb = _design(X)
    return softmax(Xb @ theta.reshape(K, Xb.shape[1]).T, axis=1)


def laplace_predictive(theta: np.ndarray, cov: np.ndarray, X: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Probit-moderated class probabilities and the std of each class logit under the Laplace
    posterior N(theta, cov) (MacKay 1992: kappa = (1 + pi s^2 / 8)^-1/2 per logit)."""
    Xb = _design(X)
    p1 = Xb.shape[1]
    logits = Xb @ theta.reshape(K, p1).T
    var = np.stack([np.einsum("ij,jk,ik->i", Xb, cov[k * p1:(k + 1) * p1, k * p1:(k + 1) * p1], Xb)
                    for k in range(K)], axis=1)
    std = np.sqrt(np.maximum(var, 0.0))
    return softmax(logits / np.sqrt(1 + np.pi * var / 8), axis=1), std
