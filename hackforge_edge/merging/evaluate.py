"""Every input, the base and the merge, evaluated on every task's held-out test split.

A model is evaluated on a task when its classes are that task's classes (same labels, same
order). The merged model answers each task with that task's own head. "base" is the base
backbone (its own BatchNorm statistics) under each task's fine-tuned head: the merge with
lambda = 0. "ensemble" averages the softmax of every input that knows the task's classes
(one backbone pass per input: the upper bound a merge tries to reach in one pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from hackforge_edge.data.splits import DatasetSplits


@dataclass
class Task:
    """One input's task: its name, class names and data splits."""

    name: str
    labels: list[str]
    splits: DatasetSplits


def head_view(model: nn.Module, index: int) -> nn.Module:
    """A module returning only output ``index`` of a multi-head model (for ``evaluate``)."""
    from torch import nn

    class HeadView(nn.Module):
        def __init__(self, inner, i):
            super().__init__()
            self.inner, self.i = inner, i

        def forward(self, x):
            return self.inner(x)[self.i]

    return HeadView(model, index).eval()


def _short(m: dict[str, Any], n: int) -> dict[str, Any]:
    return {"accuracy": m.get("accuracy"), "f1": m.get("f1"), "roc_auc": m.get("roc_auc"),
            "loss": m.get("loss"), "n_images": n}


def evaluate_models(tasks: Sequence[Task], inputs: Sequence[nn.Module], models: dict[str, nn.Module],
                    *, device: str = "cpu", ensemble: bool = True) -> dict[str, Any]:
    """{"tasks": [names], "rows": {model: {task: metrics or None}}, "method"}.

    ``inputs``: each input's own single-head model, in task order. ``models``: multi-head
    models (name -> model with one output per task, in task order), e.g. "merge", "base".
    """
    from hackforge_edge.training.loop import evaluate, predict_proba
    from hackforge_edge.training.metrics import classification_metrics

    rows: dict[str, dict[str, Any]] = {}
    tests = [(t, t.splits.test.to_nchw(t.splits.preprocess), t.splits.test.labels) for t in tasks]
    probs_cache: dict[tuple[int, int], np.ndarray] = {}
    for i, (src, model) in enumerate(zip(tasks, inputs)):
        row = {}
        for j, (t, x, y) in enumerate(tests):
            if t.labels != src.labels:
                row[t.name] = None  # this input's head does not know the task's classes
                continue
            p = predict_proba(model, x, device=device)
            probs_cache[(i, j)] = p
            row[t.name] = _short(classification_metrics(y, p, class_names=t.labels), len(y))
        rows[f"input:{src.name}"] = row
    for name, mh in models.items():
        rows[name] = {t.name: _short(evaluate(head_view(mh, j), (x, y), class_names=t.labels,
                                              device=device), len(y))
                      for j, (t, x, y) in enumerate(tests)}
    if ensemble:
        row = {}
        for j, (t, _x, y) in enumerate(tests):
            ps = [p for (i, jj), p in probs_cache.items() if jj == j]
            row[t.name] = _short(classification_metrics(y, np.mean(ps, axis=0), class_names=t.labels),
                                 len(y)) if ps else None
        rows["ensemble"] = row
    for r in rows.values():
        accs = [m["accuracy"] for m in r.values() if m and m.get("accuracy") is not None]
        r["_mean_accuracy"] = float(np.mean(accs)) if accs else None
    return {"tasks": [t.name for t in tasks], "rows": rows, "kind": "measured",
            "method": "PyTorch models on each task's held-out test split; an input only on tasks "
                      "with its own classes; base = base backbone with each task's head; "
                      "ensemble = mean softmax of the inputs that know the task's classes"}


def table_markdown(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown table of accuracies (rows: models, columns: tasks)."""
    tasks = result["tasks"]
    lines = ["| model | " + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 2) + "|"]
    for name, r in result["rows"].items():
        cells = [("-" if r.get(t) is None else f"{r[t]['accuracy']:.3f}") for t in tasks]
        mean = r.get("_mean_accuracy")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'-' if mean is None else f'{mean:.3f}'} |")
    return "\n".join(lines) + "\n"
