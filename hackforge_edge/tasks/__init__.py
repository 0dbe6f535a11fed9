"""Tasks: what differs between image and text (and later tabular) models in the pipeline.

A task adapter gives the train-and-export recipe everything modality-specific: its defaults,
input checks, data loading, model building, export example and validation inputs, INT8 mode,
bundle sidecars (labels, preprocessing, tokenizer) and profiling shapes. The recipe itself is
the same for every task. Adapters import torch lazily; this module stays light (the CLI reads
it at start-up).
"""

from __future__ import annotations

from typing import Any

TASKS = ("image", "text")


def infer_task(model: str | None) -> str:
    """"text" for a registered text model or a transformers model directory, else "image"."""
    from hackforge_edge.models.text import looks_like_text_model

    return "text" if looks_like_text_model(model) else "image"


def task_defaults(task: str) -> dict[str, Any]:
    """The no-argument recipe of ``task``: model, weights, strategy, epochs, lr, batch_size."""
    from hackforge_edge.training.defaults import DEFAULTS, TEXT_DEFAULTS

    recipe = TEXT_DEFAULTS if task == "text" else DEFAULTS
    return {k: getattr(recipe, k) for k in ("model", "weights", "strategy", "epochs", "lr", "batch_size")}


def get_task(name: str):
    """The adapter object of task ``name`` (see tasks/image.py for the interface)."""
    if name == "image":
        from hackforge_edge.tasks.image import ImageTask
        return ImageTask()
    if name == "text":
        from hackforge_edge.tasks.text import TextTask
        return TextTask()
    from hackforge_edge.errors import UsageError
    raise UsageError(f"unknown task {name!r} (valid: {', '.join(TASKS)})")
