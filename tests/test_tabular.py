"""Tabular transfer: the closed forms against direct solves, the strategies on scikit-learn's
tables, skl2onnx parity, bad input, and a bundle served by rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hackforge_edge.errors import DataError, UsageError
from hackforge_edge.tabular import closed_form as cf
from hackforge_edge.tabular.data import load_task
from hackforge_edge.tabular.strategies import fit_strategy


@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    X -= X.mean(0)
    w_true = rng.normal(size=5)
    y = X @ w_true + 0.1 * rng.normal(size=60)
    return X, y - y.mean(), rng.normal(size=5)


def test_regularized_limits_are_ols_and_the_source(linear_problem):
    X, y, w_s = linear_problem
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(cf.regularized_linear(X, y, w_s, 1e-10), ols, atol=1e-8)
    np.testing.assert_allclose(cf.regularized_linear(X, y, w_s, 1e12), w_s, atol=1e-8)
    # in between it is the stationary point of ||y - Xw||^2 + lam ||w - w_s||^2
    w = cf.regularized_linear(X, y, w_s, 3.0)
    np.testing.assert_allclose(-2 * X.T @ (y - X @ w) + 2 * 3.0 * (w - w_s), 0, atol=1e-9)


def test_bayesian_posterior_mean_is_the_regularized_solution_for_the_matching_prior(linear_problem):
    X, y, w_s = linear_problem
    lam, noise_var = 2.5, 0.3
    mean, cov = cf.gaussian_posterior(X, y, w_s, (noise_var / lam) * np.eye(5), noise_var)
    np.testing.assert_allclose(mean, cf.regularized_linear(X, y, w_s, lam), atol=1e-10)
    np.testing.assert_allclose(cov, noise_var * np.linalg.inv(X.T @ X + lam * np.eye(5)), atol=1e-10)


def test_statmap_and_covariance_formulas(linear_problem):
    X, y, w_s = linear_problem
    Xr = X + 3.0
    want = [np.cov(Xr[:, j], y, bias=True)[0, 1] / np.var(Xr[:, j]) for j in range(5)]
    np.testing.assert_allclose(cf.statmap(Xr, y), want, atol=1e-12)
    A = np.cov(X.T) + np.eye(5)
    B = np.cov((X * 2).T) + np.eye(5)
    np.testing.assert_allclose(A @ cf.covariance_mapped(A, B, w_s), B @ w_s, atol=1e-10)


def test_softmax_map_is_the_prior_under_a_huge_precision_and_stationary_otherwise():
    rng = np.random.default_rng(1)
    X, y, K = rng.normal(size=(40, 3)), rng.integers(0, 3, 40), 3
    prior = rng.normal(size=K * 4)
    th = cf.fit_softmax_map(X, y, K, prior, cf.isotropic_prior(K, 3, 1e9, 1e9))
    np.testing.assert_allclose(th, prior, atol=1e-5)
    P = cf.isotropic_prior(K, 3, 2.0)
    th = cf.fit_softmax_map(X, y, K, prior, P)
    _, g = cf.softmax_nll(th, np.hstack([X, np.ones((40, 1))]), np.eye(K)[y])
    np.testing.assert_allclose(g + P @ (th - prior), 0, atol=1e-4)


@pytest.mark.parametrize("data,strategies", [
    ("sklearn:diabetes", ("scratch", "regularized", "bayesian", "covariance", "statmap")),
    ("sklearn:breast_cancer", ("regularized", "statmap")),
])
def test_strategies_fit_plain_sklearn_pipelines(data, strategies):
    task = load_task(data, seed=0)
    for s in strategies:
        fit = fit_strategy(task, s, seed=0)
        pred = fit.pipeline.predict(task.test.X)        # a real scikit-learn Pipeline
        assert pred.shape == (len(task.test.y),)
        if task.problem == "regression":
            from sklearn.metrics import r2_score

            assert r2_score(task.test.y, pred) > (0.3 if s != "statmap" else -10), s
        else:
            assert (pred == task.test.y).mean() > 0.8, s
        assert fit.chosen["cv_folds"] == 5


def test_export_parity_with_sklearn(tmp_path):
    from hackforge_edge.tabular.export import export_pipeline, validate_pipeline

    for data, strategy in (("sklearn:breast_cancer", "statmap"), ("sklearn:diabetes", "bayesian")):
        task = load_task(data, seed=1)
        fit = fit_strategy(task, strategy, seed=1)
        path = tmp_path / f"{strategy}.onnx"
        export_pipeline(fit.pipeline, len(task.feature_names), path, task.problem)
        checked = validate_pipeline(fit.pipeline, path, task.test.X, task.problem)
        assert checked["passed"], checked
        for out in checked["outputs"].values():
            assert out["max_abs_diff"] <= 1e-5 + 1e-5 * 400   # values: diabetes targets reach ~350


def _csv(path: Path, header: list[str], rows: list[list]) -> str:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return str(path)


def test_bad_input_is_one_line(tmp_path):
    rows = [[i, i % 3, i % 2] for i in range(30)]
    src = _csv(tmp_path / "s.csv", ["a", "b", "y"], rows)
    tgt = _csv(tmp_path / "t.csv", ["a", "b", "y"], rows)
    with pytest.raises(DataError, match="no column 'label'"):
        load_task(tgt, source_data=src, target_column="label")
    with pytest.raises(DataError, match="is not a number"):
        load_task(_csv(tmp_path / "n.csv", ["a", "b", "y"], [[1, "x", 0]] + rows), source_data=src,
                  target_column="y")
    with pytest.raises(DataError, match="NaN or infinite"):
        load_task(_csv(tmp_path / "nan.csv", ["a", "b", "y"], [[1, "nan", 0]] + rows), source_data=src,
                  target_column="y")
    with pytest.raises(DataError, match="single class"):
        load_task(_csv(tmp_path / "one.csv", ["a", "b", "y"], [[i, i, 1] for i in range(30)]),
                  source_data=src, target_column="y")
    with pytest.raises(DataError, match="different columns"):
        load_task(_csv(tmp_path / "c.csv", ["a", "c", "y"], rows), source_data=src, target_column="y")
    task = load_task("sklearn:breast_cancer", data_fraction=0.05)
    with pytest.raises(DataError, match="10-fold cross-validation needs at least 10"):
        fit_strategy(task, "regularized", cv=10)
    with pytest.raises(UsageError, match="unknown tabular strategy"):
        fit_strategy(task, "lora")
    with pytest.raises(UsageError, match="unknown embedded table"):
        load_task("sklearn:iris")


def test_train_and_export_tabular_bundle_is_served_by_rows(tmp_path):
    import onnxruntime as ort
    from fastapi.testclient import TestClient

    from hackforge_edge.bundle.reader import Bundle
    from hackforge_edge.recipes.train_tabular import TabularConfig, run
    from hackforge_edge.serving.app import create_app
    from hackforge_edge.serving.settings import load_settings
    from hackforge_edge.training.artifacts import Metrics

    out = run(TabularConfig(strategy="bayesian", profiles=("local",), out=str(tmp_path / "b")),
              say=lambda _m: None)
    b = Bundle.open(out)                     # complete and verified
    metrics = b.read(Metrics)
    assert metrics.accuracy > 0.85 and metrics.predictive["mean_logit_std"] > 0
    spec = json.loads((out / "preprocess.json").read_text())
    names = [f["name"] for f in spec["features"]]
    task = load_task("sklearn:breast_cancer", seed=0)
    X = task.test.X[:3]
    probs = ort.InferenceSession(str(out / "model.onnx")).run(["probabilities"],
                                                              {"input": X.astype(np.float32)})[0]
    app = create_app(out, settings=load_settings({"warmup_runs": 1, "max_batch": 4}, environ={}))
    with TestClient(app) as tc:
        assert app.state.host.ready.wait(60)
        r = tc.post("/v1/predict", json={"rows": [dict(zip(names, map(float, x))) for x in X]})
        assert r.status_code == 200, r.text
        got = [[p["probabilities"][c] for c in spec["class_names"]] for p in r.json()["predictions"]]
        np.testing.assert_allclose(got, probs, atol=1e-6)
        r2 = tc.post("/v1/predict", json={"rows": [list(map(float, x)) for x in X]})
        assert r2.json()["predictions"] == r.json()["predictions"]
        row = dict(zip(names, map(float, X[0])))
        for bad, code in (({k: v for k, v in row.items() if k != names[0]}, "invalid_features"),
                          ({**row, "extra": 1.0}, "invalid_features"),
                          ({**row, names[1]: "12"}, "invalid_feature"),
                          ({**row, names[1]: None}, "invalid_feature")):
            resp = tc.post("/v1/predict", json={"rows": [bad]})
            assert resp.status_code == 422 and resp.json()["error"]["code"] == code, resp.text
        resp = tc.post("/v1/predict", content=b'{"rows": [[NaN' + b', 1.0' * 29 + b']]}',
                       headers={"content-type": "application/json"})
        assert resp.status_code in (400, 422), resp.text
        assert tc.post("/v1/predict", json={"rows": []}).status_code == 422
        assert tc.post("/v1/predict", json={"rows": [row] * 5}).status_code == 413
        assert tc.post("/v1/predict", json={"rows": [row]}).status_code == 200   # still serving


def test_gate_tabular_shift_on_raw_features(tmp_path):
    """The breast-cancer split is by mean radius: the shift must be found and name that column;
    two samples of one population must not look shifted."""
    from hackforge_edge.cli import main
    from hackforge_edge.gate.tabular import TabularShiftReport, tabular_shift

    assert main(["gate", "--task", "tabular", "--out", str(tmp_path / "g")]) == 0
    report = TabularShiftReport.read(tmp_path / "g")
    assert report.mmd["p_value"] < 0.01 and report.pad["pad"] > 1.5
    assert report.shifted_features[0]["feature"] == "mean radius"
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(120, 4))
    header = ["a", "b", "c", "y"]
    src = _csv(tmp_path / "s.csv", header, [[*r[:3], int(r[3] > 0)] for r in rows[:60]])
    tgt = _csv(tmp_path / "t.csv", header, [[*r[:3], int(r[3] > 0)] for r in rows[60:]])
    same = tabular_shift(load_task(tgt, source_data=src, target_column="y"), n_permutations=100)
    assert same.mmd["p_value"] > 0.05 and same.ks["n_shifted"] == 0
    assert main(["gate", "--task", "tabular", "--data", "sklearn:iris", "--out", str(tmp_path / "x")]) == 2
