"""Sweep statistics against the published formulas and scipy's own tests."""

import math

import pytest

pytest.importorskip("scipy")

from hackforge_edge.sweep.stats import mean_ci, paired, pareto_front  # noqa: E402


def test_t_interval_matches_the_formula():
    s = mean_ci([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.302652729911275 (Student t table); sd = 1
    half = 4.302652729911275 / math.sqrt(3)
    assert s["n"] == 3 and s["mean"] == 2.0 and s["sd"] == pytest.approx(1.0)
    assert (s["lo"], s["hi"]) == pytest.approx((2 - half, 2 + half))
    assert mean_ci([0.7])["lo"] is None and mean_ci([])["mean"] is None
    assert mean_ci([0.5, None, ""])["n"] == 1  # missing values are dropped, never counted as 0


def test_paired_comparison_verdicts_and_tests():
    from scipy import stats

    better = paired([0.9, 0.82, 0.95, 0.91], [0.7, 0.69, 0.8, 0.75])
    assert better["verdict"] == "higher" and better["n_pairs"] == 4
    assert better["t_p"] == pytest.approx(stats.ttest_rel([0.9, 0.82, 0.95, 0.91], [0.7, 0.69, 0.8, 0.75]).pvalue)
    assert better["wilcoxon_min_p"] == pytest.approx(2 / 16) and better["wilcoxon_p"] == pytest.approx(0.125)
    assert paired([0.6, 0.62, 0.61], [0.8, 0.81, 0.83])["verdict"] == "lower"
    assert paired([0.7, 0.9, 0.6], [0.8, 0.7, 0.75])["verdict"] == "no clear difference"
    same = paired([0.8, 0.9], [0.7, 0.8])  # +0.1 on both seeds: no spread, no t-test
    assert same["t_p"] is None and "no spread" in same["note"]
    assert paired([0.8], [0.7])["verdict"] == "not enough seeds"
    assert paired([0.8, None, 0.9], [0.7, 0.6, None])["n_pairs"] == 1


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.6), (2.0, 0.8), (3.0, 0.7), (0.5, 0.5), (2.0, 0.9), (4.0, 0.95)]
    assert pareto_front(pts) == [3, 0, 4, 5]
