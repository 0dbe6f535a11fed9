"""Tabular transfer: linear and logistic models from a source population to a target one
(regularized, Bayesian, covariance and moment-matched transfer), as scikit-learn pipelines."""
