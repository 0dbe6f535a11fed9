"""One backbone, one head per task: the deployable form of a merge.

Every input keeps its own classifier head (task arithmetic and TIES merge the shared encoder
and keep task-specific heads); the merged backbone runs once and each head reads its
features. The ONNX export has one output per task (``logits_<task>``), in input order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def output_name(task: str) -> str:
    """``logits_<task>`` with every character outside [A-Za-z0-9_] replaced by '_'."""
    return "logits_" + re.sub(r"[^A-Za-z0-9_]", "_", task)


def unique_task_names(names: Sequence[str]) -> list[str]:
    """Task names from bundle names, made unique (a suffix on repeats)."""
    out: list[str] = []
    for n in names:
        base = re.sub(r"[^A-Za-z0-9_]", "_", n) or "task"
        cand, i = base, 2
        while cand in out:
            cand, i = f"{base}_{i}", i + 1
        out.append(cand)
    return out


def _multi_head_cls():
    from torch import nn

    class MultiHeadModel(nn.Module):
        """``backbone`` (the architecture with its head replaced by Identity) + ``heads``.

        forward(x) returns a tuple, one logits tensor per head, from a single backbone pass.
        """

        def __init__(self, backbone: nn.Module, heads: Sequence[nn.Module], task_names: Sequence[str]):
            super().__init__()
            self.backbone = backbone
            self.heads = nn.ModuleList(heads)
            self.task_names = list(task_names)

        def forward(self, x):
            feats = self.backbone(x)
            return tuple(h(feats) for h in self.heads)

    return MultiHeadModel


def build_multi_head(model_name: str, backbone_state: dict[str, torch.Tensor],
                     heads: Sequence[dict[str, torch.Tensor]], task_names: Sequence[str]) -> nn.Module:
    """The multi-head model of registered architecture ``model_name``.

    ``backbone_state``: every tensor outside the head; ``heads``: per task, the head's tensors
    keyed as in the full state_dict (``<head>.weight``, ``<head>.bias``).
    """
    from torch import nn

    from hackforge_edge.models.registry import MODELS, _set_module, create_model

    head_path = MODELS[model_name].head
    prefix = head_path + "."
    modules = []
    for h in heads:
        w = h[prefix + "weight"]
        lin = nn.Linear(w.shape[1], w.shape[0], bias=(prefix + "bias") in h)
        lin.load_state_dict({k[len(prefix):]: v for k, v in h.items()})
        modules.append(lin)
    backbone = create_model(model_name, int(heads[0][prefix + "weight"].shape[0]), "none")
    missing, unexpected = backbone.load_state_dict(backbone_state, strict=False)
    left = [k for k in missing if not k.startswith(prefix)]
    if left or unexpected:
        from hackforge_edge.errors import ModelError

        raise ModelError(f"merged backbone does not fit {model_name}: missing {left[:3]}, "
                         f"unexpected {list(unexpected)[:3]}")
    _set_module(backbone, head_path, nn.Identity())
    model = _multi_head_cls()(backbone, modules, task_names).float().eval()
    model.hf_edge_meta = {"name": model_name, "head": None, "multi_head": head_path,
                          "tasks": list(task_names)}
    return model


def single_task_model(model_name: str, state: dict[str, torch.Tensor], num_classes: int) -> nn.Module:
    """A plain registered model holding ``state`` (an input's own fine-tuned weights)."""
    from hackforge_edge.models.registry import create_model

    model = create_model(model_name, num_classes, "none")
    model.load_state_dict(state)
    return model.eval()


def export_multi_head(model: nn.Module, example: torch.Tensor, path, validation_x, *,
                      exporter: str = "auto"):
    """Export ``model`` with one output per task and validate it against PyTorch at another
    batch size. Returns (ExportResult, validation dict)."""
    from hackforge_edge import export as exporters

    names = [output_name(t) for t in model.task_names]
    export = exporters.export_onnx(model, example, path, input_names=["input"], output_names=names,
                                   exporter=exporter)
    validation = exporters.validate_export(model, path, validation_x, output_names=names,
                                           export_input_shapes=export.export_input_shapes)
    return export, validation
