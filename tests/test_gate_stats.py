"""Shift statistics and transferability scores against their published formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hackforge_edge.errors import DataError
from hackforge_edge.gate import shift
from hackforge_edge.gate import transferability as tr


@pytest.fixture(scope="module")
def samples():
    # under H0 the p-value is uniform: any one draw can be small; this one is not (p ~ 0.8)
    rng = np.random.default_rng(0)
    same_a, same_b = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
    far = rng.normal(size=(100, 8)) + 2.5
    return same_a, same_b, far


def test_mmd_same_distribution_near_zero_separated_large(samples):
    a, b, far = samples
    same = shift.mmd_test(a, b, n_permutations=200)
    apart = shift.mmd_test(a, far, n_permutations=200)
    assert abs(same.mmd2) < 0.02 and same.p_value > 0.1
    assert apart.mmd2 > 0.3 and apart.p_value < 0.01
    assert same.bandwidth > 0


def test_mmd_unbiased_matches_definition():
    """MMD^2_u written out term by term (Gretton et al. 2012, eq. 3) on 3 + 3 points."""
    x = np.array([[0.0], [1.0], [2.0]])
    y = np.array([[0.5], [3.0], [4.0]])
    s = 1.0
    k = lambda u, v: math.exp(-((u - v) ** 2) / (2 * s * s))  # noqa: E731
    xs, ys = x[:, 0], y[:, 0]
    kxx = sum(k(xs[i], xs[j]) for i in range(3) for j in range(3) if i != j) / 6
    kyy = sum(k(ys[i], ys[j]) for i in range(3) for j in range(3) if i != j) / 6
    kxy = sum(k(u, v) for u in xs for v in ys) / 9
    got = shift.mmd_test(np.r_[x, x[:2]], np.r_[y, y[:2]], bandwidth=s, n_permutations=1)  # shapes ok
    assert got.n_source == 5
    z = np.r_[x, y]
    kz = np.exp(-shift._sq_dists(z) / (2 * s * s))
    assert shift._mmd2_from_kernel(kz, 3) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-12)


def test_pad_near_zero_and_near_two(samples):
    a, b, far = samples
    assert shift.proxy_a_distance(a, b).pad < 0.5
    assert shift.proxy_a_distance(a, far).pad > 1.9


def test_ks_bh_flags_only_shifted_features(samples):
    a, b, _ = samples
    moved = b.copy()
    moved[:, 2] += 2.0
    res = shift.ks_shift(a, moved)
    assert res.n_shifted == 1 and res.top_features[0]["feature"] == 2
    assert shift.ks_shift(a, b).n_shifted == 0


def test_linear_cka_oracle():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    assert shift.linear_cka(x, y) == pytest.approx(0.55761, abs=5e-5)
    assert shift.linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-5)
    with pytest.raises(DataError, match="same examples"):
        shift.linear_cka(x, y[:50])


def test_too_few_samples_say_how_many():
    rng = np.random.default_rng(1)
    with pytest.raises(DataError, match="at least 5 examples per domain"):
        shift.mmd_test(rng.normal(size=(4, 2)), rng.normal(size=(9, 2)))
    with pytest.raises(DataError, match="at least 5 examples per domain"):
        shift.proxy_a_distance(rng.normal(size=(4, 2)), rng.normal(size=(9, 2)))
    with pytest.raises(DataError, match="at least 5 labelled target examples per class"):
        tr.probe_accuracy(rng.normal(size=(8, 2)), np.array([0, 0, 0, 0, 0, 1, 1, 1]))


def test_leep_hand_computed():
    theta = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    y = np.array([0, 0, 1, 1])
    # P(y, z) = 1/4 sum theta: P(0,0) = 1.7/4, P(0,1) = 0.3/4, P(1,0) = 0.5/4, P(1,1) = 1.5/4
    # P(z0) = 0.55, P(z1) = 0.45 -> P(0|z0) = 17/22, P(0|z1) = 1/6
    p0z0, p0z1 = 17 / 22, 1 / 6
    eep = [0.9 * p0z0 + 0.1 * p0z1, 0.8 * p0z0 + 0.2 * p0z1,
           0.3 * (1 - p0z0) + 0.7 * (1 - p0z1), 0.2 * (1 - p0z0) + 0.8 * (1 - p0z1)]
    expected = sum(math.log(v) for v in eep) / 4
    assert expected == pytest.approx(-0.383981, abs=1e-6)
    assert tr.leep(theta, y) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(DataError, match="no source head"):
        tr.leep(None, y)


def test_h_score_hand_computed():
    f = np.array([[0.0], [2.0], [4.0], [6.0]])
    y = np.array([0, 0, 1, 1])
    # cov(f) = 20/3; class means 1, 5 -> cov(E[f|y]) = 16/3; H = 16/20
    assert tr.h_score(f, y) == pytest.approx(0.8, abs=1e-12)
    # one feature: Ledoit-Wolf shrinks toward itself; ML covariances 5 and 4 -> (1 - a) 4 / 5
    h, alpha = tr.shrunk_h_score(f, y)
    assert h == pytest.approx((1 - alpha) * 0.8, abs=1e-12)


def test_shrunk_h_score_matches_formula_with_sklearn_shrinkage():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 30)
    f = rng.normal(size=(30, 12)) + y[:, None] * 0.5
    h, alpha = tr.shrunk_h_score(f, y)
    lw = LedoitWolf().fit(f)
    mu = f.mean(0)
    g = np.stack([f[y == c].mean(0) for c in y]) - mu
    sigma = np.cov(f, rowvar=False, ddof=0)
    d = f.shape[1]
    shrunk = (1 - lw.shrinkage_) * sigma + lw.shrinkage_ * np.trace(sigma) / d * np.eye(d)
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - lw.shrinkage_) * g.T @ g / 30))
    assert alpha == pytest.approx(lw.shrinkage_)
    assert h == pytest.approx(expected, rel=1e-9)


def test_logme_is_the_maximum_evidence():
    """LogME's fixed point equals a direct numerical maximisation of the evidence formula."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, 40)
    f[:, 0] += y
    best = []
    for c in range(3):
        t = (y == c).astype(float)
        res = minimize(lambda p, t=t: -tr.log_evidence(f, t, math.exp(p[0]), math.exp(p[1])), [0.0, 0.0],
                       method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
        best.append(-res.fun / 40)
    assert tr.logme(f, y) == pytest.approx(np.mean(best), abs=1e-6)
    # informative features score higher than noise
    assert tr.logme(f, y) > tr.logme(rng.normal(size=(40, 5)), y)


def test_log_evidence_hand_computed_one_feature():
    """n = 2, d = 1, F = [1, 1]', t = [1, 0]', alpha = beta = 1:
    A = 1 + 2 = 3, m = 1/3, ||Fm - t||^2 = (2/3)^2 + (1/3)^2 = 5/9,
    log p = -log(2 pi) - 5/18 - 1/18 - log(3)/2."""
    f = np.array([[1.0], [1.0]])
    t = np.array([1.0, 0.0])
    expected = -math.log(2 * math.pi) - 5 / 18 - 1 / 18 - math.log(3) / 2
    assert tr.log_evidence(f, t, 1.0, 1.0) == pytest.approx(expected, abs=1e-12)


def test_probe_folds_are_paired_and_informative():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 30)
    good = rng.normal(size=(60, 4)) + y[:, None] * 3
    noise = rng.normal(size=(60, 4))
    a = tr.probe_accuracy(good, y, seed=0)
    b = tr.probe_accuracy(noise, y, seed=0)
    assert len(a.fold_accuracies) == len(b.fold_accuracies) == 10
    assert a.mean_accuracy > 0.9 > 0.7 > b.mean_accuracy
    assert tr.probe_accuracy(good, y, probe="linear").mean_accuracy > 0.9


def test_decision_rule_and_thresholds_file():
    from hackforge_edge.gate.decide import StartEvidence, decide, load_thresholds

    th = load_thresholds()
    assert th["gate"]["origin"] and th["monitor"]["origin"]

    def ev(name, folds):
        return StartEvidence(name, "file", folds, float(np.mean(folds)), None, 0.0, None, 0.0, 0.0,
                             0.0, 4, 48, 12)

    ref = [0.7, 0.72, 0.68, 0.7, 0.71, 0.69]
    out = decide([ev("none", ref), ev("good", [v + 0.2 for v in ref]),
                  ev("bad", [v - 0.25 for v in ref]), ev("same", [v + 0.01 * (-1) ** i for i, v in enumerate(ref)])])
    verdicts = {d.name: (d.rank, d.verdict) for d in out}
    assert verdicts["good"] == (1, "helps") and verdicts["bad"][1] == "hurts"
    assert verdicts["same"][1] == "uncertain" and verdicts["none"][1] == "reference"
