"""What every tabular strategy returns, the hyper-parameter grids, and the CV chooser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

LAMBDAS = tuple(float(x) for x in np.logspace(-3, 4, 15))
# logistic: nearly separable targets (breast cancer) make weak penalties diverge slowly, so the
# grid stops at lam = 0.01 (C = 100)
LOGISTIC_LAMBDAS = tuple(float(x) for x in np.logspace(-2, 3, 11))
TAUS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
RHOS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class TabularFit:
    """A fitted strategy: the scikit-learn pipeline and what was chosen and how."""

    strategy: str
    pipeline: Any                      # sklearn Pipeline(StandardScaler, Ridge|LogisticRegression)
    chosen: dict[str, Any] = field(default_factory=dict)
    predictive: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    """raw X -> (prediction or probabilities, std); only for ``bayesian``."""
    iterations: int | None = None      # optimiser iterations on the target (0 for closed forms)


def cv_choose(grid, score: Callable[[Any, np.ndarray, np.ndarray], float], splits) -> tuple[Any, float]:
    """The grid value with the lowest mean validation loss over the folds."""
    best, best_loss = None, np.inf
    for value in grid:
        loss = float(np.mean([score(value, tr, va) for tr, va in splits]))
        if loss < best_loss:
            best, best_loss = value, loss
    return best, best_loss
