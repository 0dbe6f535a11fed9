"""The gate's shift statistics on a table's raw features (``hf-edge gate --task tabular``).

Source and target rows are standardised with the target training split's statistics (the
same scaling the tabular models use), then compared with the image gate's tests: MMD^2 with a
permutation p-value, the proxy A-distance of a cross-validated domain classifier, and per-feature
KS tests with a Benjamini-Hochberg correction, the most shifted features named.

Shift is not harm: these say how far the populations differ, not whether transfer from one to
the other will hurt. The tabular strategies already choose how much of the source to keep by
cross-validation on the target (lambda -> infinity is scratch's end for ``regularized``), and
the report says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from hackforge_edge.bundle.schema import Artifact

NOTE = ("shift statistics describe how far the source population is from the target's; they "
        "do not predict harm. The tabular strategies pick lambda / tau / rho by cross-validation "
        "on the target, which can fall back to the target data alone.")


class TabularShiftReport(Artifact):
    """``gate_tabular.json``: distribution shift between a source and a target table."""

    FILENAME: ClassVar[str] = "gate_tabular.json"
    schema_version: Literal[1] = 1

    kind: Literal["measured"] = "measured"
    method: str
    created_at: str
    dataset: str
    problem: str
    n_source: int
    n_target: int
    n_features: int
    mmd: dict[str, Any]
    pad: dict[str, Any]
    ks: dict[str, Any]
    shifted_features: list[dict[str, Any]] = Field(
        description="features whose BH-adjusted KS p-value is below the FDR, largest statistic first")
    note: str = NOTE
    duration_s: Optional[float] = None


def tabular_shift(task, *, seed: int = 0, n_permutations: int = 200) -> TabularShiftReport:
    """Shift between ``task.source`` and ``task.train`` on standardised raw features."""
    import numpy as np
    from scipy.stats import false_discovery_control, ks_2samp
    from sklearn.preprocessing import StandardScaler

    from hackforge_edge.bundle.io import utc_now
    from hackforge_edge.gate.shift import ks_shift, mmd_test, proxy_a_distance

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(task.train.X)
    xs, xt = scaler.transform(task.source.X), scaler.transform(task.train.X)
    mmd = mmd_test(xs, xt, n_permutations=n_permutations, seed=seed)
    pad = proxy_a_distance(xs, xt, seed=seed)
    ks = ks_shift(xs, xt)
    res = ks_2samp(xs, xt, axis=0)
    stat = np.atleast_1d(res.statistic).astype(float)
    adj = false_discovery_control(np.nan_to_num(np.atleast_1d(res.pvalue).astype(float), nan=1.0),
                                  method="bh")
    shifted = [{"feature": task.feature_names[i], "ks_statistic": float(stat[i]),
                "p_adjusted": float(adj[i])}
               for i in np.argsort(-stat) if adj[i] < ks.fdr]
    ks_json = ks.to_json()
    for entry in ks_json["top_features"]:  # index -> the column's name
        entry["feature"] = task.feature_names[entry["feature"]]
    return TabularShiftReport(
        method="standardised raw features (target training statistics): MMD^2_u with an RBF kernel "
               "(median bandwidth) and a permutation p-value; proxy A-distance (5-fold logistic "
               "domain classifier); KS per feature with Benjamini-Hochberg",
        created_at=utc_now(), dataset=task.name, problem=task.problem, n_source=len(xs),
        n_target=len(xt), n_features=xs.shape[1], mmd=mmd.to_json(), pad=pad.to_json(), ks=ks_json,
        shifted_features=shifted, duration_s=time.perf_counter() - t0)


def run_tabular_gate(data: str, *, source_data: str | None, target_column: str | None,
                     problem: str | None, seed: int, out: str | Path) -> tuple[TabularShiftReport, Path]:
    """Load the task (every bad input is one line), measure the shift, write gate_tabular.json."""
    from hackforge_edge.tabular.data import load_task

    task = load_task(data, source_data=source_data, target_column=target_column, problem=problem,
                     seed=seed)
    report = tabular_shift(task, seed=seed)
    return report, report.write(Path(out))
