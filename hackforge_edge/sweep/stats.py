"""Statistics over seeds: mean with a 95 % Student-t interval, and paired comparisons.

Interval: mean +- t(0.975, n-1) * s / sqrt(n), s the sample standard deviation (ddof 1), the
t quantile from scipy. It assumes the per-seed values are independent draws from a roughly
normal distribution; with 3 seeds t(0.975, 2) = 4.30, so intervals are wide, honestly so.
With one seed there is no interval (None), never a zero-width one.

Paired comparison (strategy vs scratch, same model, fraction and seeds): the per-seed
differences d_i = x_i - scratch_i (each seed shares the data split and the training order),
their mean and t-interval, a paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``, exact for small n). With n seeds the smallest
possible two-sided Wilcoxon p is 2 / 2^n (0.25 at n = 3): it cannot reject anything below
n = 6, and the summary says so rather than hiding it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

INTERVAL_METHOD = "95% Student t-interval over seeds: mean +- t(0.975, n-1) * sd / sqrt(n)"
PAIRED_METHOD = ("per-seed paired differences (strategy - scratch, same seed and split): mean, "
                 "95% t-interval, paired t-test (scipy.stats.ttest_rel) and Wilcoxon signed-rank "
                 "(scipy.stats.wilcoxon, two-sided)")
CONFIDENCE = 0.95


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and v != "" and math.isfinite(float(v))]


def mean_ci(values: Sequence[Any], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """{"n", "mean", "sd", "lo", "hi"} of the finite values; lo/hi None when n < 2."""
    from scipy import stats

    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "lo": None, "hi": None}
    mean = sum(xs) / n
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "lo": None, "hi": None}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def paired(values: Sequence[Any], baseline: Sequence[Any]) -> dict[str, Any]:
    """Paired comparison of ``values`` with ``baseline`` (same order = same seeds).

    Pairs with a missing side are dropped. Returns the difference's mean_ci, ``t_p`` (paired
    t-test), ``wilcoxon_p`` and ``wilcoxon_min_p`` (the smallest p the test can give at this n),
    and ``verdict``: "higher" / "lower" when the 95 % interval of the difference excludes 0,
    "no clear difference" when it straddles 0, "not enough seeds" with fewer than 2 pairs.
    """
    from scipy import stats

    pairs = [(float(a), float(b)) for a, b in zip(values, baseline)
             if a is not None and b is not None and a != "" and b != ""]
    diffs = [a - b for a, b in pairs]
    out: dict[str, Any] = {"n_pairs": len(pairs), "diff": mean_ci(diffs), "t_p": None,
                           "wilcoxon_p": None,
                           "wilcoxon_min_p": 2.0 / 2 ** len(pairs) if pairs else None}
    if len(pairs) < 2:
        out["verdict"] = "not enough seeds"
        return out
    if max(diffs) - min(diffs) <= 1e-12 * max(1.0, max(abs(d) for d in diffs)):
        # zero spread: t is undefined (scipy returns nan); the interval is the point itself
        out["note"] = "identical difference on every seed: no spread, tests undefined"
    else:
        out["t_p"] = float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
    if any(d != 0 for d in diffs):
        out["wilcoxon_p"] = float(stats.wilcoxon(diffs, alternative="two-sided").pvalue)
    lo, hi = out["diff"]["lo"], out["diff"]["hi"]
    if lo is not None and lo > 0:
        out["verdict"] = "higher"
    elif hi is not None and hi < 0:
        out["verdict"] = "lower"
    else:
        out["verdict"] = "no clear difference"
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes: lower cost (first value) and
    higher score (second). Sorted by cost. Ties on both count as non-dominated."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
