"""``metrics.json``: target-domain quality of the trained model, measured on the held-out test
split (``training.metrics.classification_metrics`` plus loss and how it was measured).

Rates are fractions in [0, 1]; an undefined one (no positives in the test set) is null, never
NaN. Binary tasks report the positive class; multi-class tasks macro averages.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from hackforge_edge.bundle.schema import Artifact

Rate = Optional[float]


class ClassMetrics(BaseModel):
    """One-vs-rest values of one class (``support``: its test images)."""

    model_config = ConfigDict(extra="forbid")

    sensitivity: Rate = None
    specificity: Rate = None
    precision: Rate = None
    f1: Rate = None
    roc_auc: Rate = None
    support: int = Field(ge=0)


class RegressionMetrics(BaseModel):
    """Held-out quality of a regression model (tabular tasks); units of the target."""

    model_config = ConfigDict(extra="forbid")
    r2: float
    rmse: float
    mae: float


class Metrics(Artifact):
    FILENAME: ClassVar[str] = "metrics.json"
    schema_version: Literal[1] = 1

    n: int = Field(ge=0, description="test items evaluated (images, texts or table rows)")
    problem: Literal["classification", "regression"] = "classification"
    accuracy: Rate = None
    f1: Rate = None
    sensitivity: Rate = None
    specificity: Rate = None
    roc_auc: Rate = None
    confusion_matrix: list[list[int]] = Field(default_factory=list,
                                              description="rows = true class, columns = predicted")
    class_names: list[str] = Field(default_factory=list)
    per_class: dict[str, ClassMetrics] = Field(default_factory=dict)
    positive_class: Optional[str] = None
    average: Optional[Literal["binary", "macro"]] = None
    regression: Optional[RegressionMetrics] = None
    source_retention: Optional[dict[str, Any]] = Field(
        default=None, description="forgetting: the source test split before and after transfer "
                                  "(accuracy_before, accuracy_after, retention, method), or why not measured")
    per_task: Optional[dict[str, Any]] = Field(
        default=None, description="merged multi-task bundles: the metrics of each task's test split")
    predictive: Optional[dict[str, Any]] = Field(
        default=None, description="predictive uncertainty (Bayesian strategies): what and how")
    loss: Optional[float] = Field(default=None, description="mean cross-entropy, nats")
    eval_duration_s: Optional[float] = None
    split: str = "test"
    n_images: int = Field(ge=0)
    kind: Literal["measured"] = "measured"
    method: str

    @classmethod
    def from_evaluation(cls, metrics: dict[str, Any], *, split: str, method: str,
                        **extra: Any) -> "Metrics":
        """From ``training.loop.evaluate``'s dict (classification metrics, loss, duration)."""
        return cls(**metrics, split=split, n_images=int(metrics["n"]), method=method, **extra)
