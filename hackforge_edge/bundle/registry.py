"""Every typed bundle file: its name -> the :class:`Artifact` class that reads and writes it.

Classes live with the stage that produces them and are imported only when asked for (the CLI
stays light). ``hf-edge schema`` publishes their JSON Schemas from this table.
"""

from __future__ import annotations

import importlib
from typing import Any

from hackforge_edge.errors import UsageError

ARTIFACTS: dict[str, str] = {
    "manifest.json": "hackforge_edge.bundle.manifest:Manifest",
    "metrics.json": "hackforge_edge.training.artifacts:Metrics",
    "export_validation.json": "hackforge_edge.export.artifact:ExportValidation",
    "training_carbon.json": "hackforge_edge.energy.artifact:TrainingCarbon",
    "profile.json": "hackforge_edge.profiling.artifact:Profile",
    "feasibility.json": "hackforge_edge.feasibility.artifact:Feasibility",
    "report.json": "hackforge_edge.report.artifact:Report",
    "gate.json": "hackforge_edge.gate.report:GateReport",
    "gate_tabular.json": "hackforge_edge.gate.tabular:TabularShiftReport",
    "tasks.json": "hackforge_edge.merging.artifacts:TasksFile",
    "merge_eval.json": "hackforge_edge.merging.artifacts:MergeEval",
}


def artifact_class(filename: str) -> Any:
    """The Artifact class of bundle file ``filename`` (UsageError for an unknown name, or one
    whose module is not part of this build)."""
    if filename not in ARTIFACTS:
        raise UsageError(f"unknown bundle file {filename!r} (known: {', '.join(ARTIFACTS)})")
    module, _, name = ARTIFACTS[filename].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a dependency of an existing module is missing: a real error
            raise
        raise UsageError(f"{filename}: its schema ({module}) is not in this build") from None


def available() -> tuple[dict[str, Any], dict[str, str]]:
    """({filename: class} importable here, {filename: why not} for the others)."""
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for filename, target in ARTIFACTS.items():
        module = target.partition(":")[0]
        try:
            found[filename] = artifact_class(filename)
        except UsageError:
            missing[filename] = f"{module} is not in this build"
    return found, missing


def json_schema(cls: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12, pydantic's) of an Artifact class, with an $id and the
    version it describes."""
    schema = cls.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"hackforge-edge/{cls.FILENAME}/v{cls.supported_version()}", **schema}
