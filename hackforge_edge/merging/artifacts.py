"""Bundle files a merge writes (typed, schema-versioned; see ``bundle.schema.Artifact``).
No torch here: the server reads ``tasks.json``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from hackforge_edge.bundle.schema import Artifact


class TaskOutput(BaseModel):
    """One task of a multi-head model: its name, ONNX output, class names, source bundle."""

    model_config = ConfigDict(extra="forbid")

    name: str
    output: str
    labels: list[str]
    bundle: str


class TasksFile(Artifact):
    """``tasks.json``: the tasks of a multi-head bundle, in ONNX output order."""

    FILENAME: ClassVar[str] = "tasks.json"
    schema_version: Literal[1] = 1
    tasks: list[TaskOutput]


class MergeEval(Artifact):
    """``merge_eval.json``: accuracy (and F1, ROC-AUC, loss) of every input, the base, the
    merge and the inputs' ensemble on every task's test split. ``rows[model][task]`` is None
    where the model does not know the task's classes; ``rows[model]["_mean_accuracy"]``."""

    FILENAME: ClassVar[str] = "merge_eval.json"
    schema_version: Literal[1] = 1
    tasks: list[str]
    rows: dict[str, dict[str, Any]]
    kind: str
    method: str
    note: str | None = None
