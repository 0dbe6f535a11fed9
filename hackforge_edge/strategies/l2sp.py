"""L2-SP (Li, Grandvalet & Davoine 2018): regularise toward the starting point, not toward zero.

Penalty ``alpha / 2 * ||w_S - w_S^0||^2 + beta / 2 * ||w_head||^2``: w_S are the shared
backbone parameters (present in the source weights with the same shape; the head excluded),
w_S^0 their source values, w_head the new head. Every parameter trains. Because the penalty
replaces weight decay (decay toward zero would pull against decay toward the start), the
optimizer runs with weight_decay 0 under this strategy; the beta term is the head's decay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from hackforge_edge.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class L2SPPenalty:
    """Training-loop hook of the ``l2sp`` strategy (see module doc)."""

    anchor: dict[str, "torch.Tensor"]
    head_names: list[str]
    alpha: float
    beta: float
    _dev: Any = None
    excluded: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if float(self.alpha) < 0:
            raise UsageError(f"--l2sp-alpha must be >= 0, got {self.alpha}")
        if float(self.beta) < 0:
            raise UsageError(f"--l2sp-beta must be >= 0, got {self.beta}")

    @classmethod
    def from_model(cls, model: "nn.Module", head_names: Iterable[str], *, alpha: float, beta: float,
                   source_state: dict[str, Any] | None = None) -> "L2SPPenalty":
        """Anchor the backbone at ``source_state`` (default: the model's current weights, i.e.
        the pretrained start point) for parameters of matching shape; ``head_names`` are decayed
        toward zero instead."""
        head = list(head_names)
        state = source_state if source_state is not None else {
            n: p.detach() for n, p in model.named_parameters()}
        anchor, excluded = {}, []
        for n, p in model.named_parameters():
            if n in head:
                continue
            if n in state and tuple(state[n].shape) == tuple(p.shape):
                anchor[n] = state[n].detach().float().clone()
            else:
                excluded.append(n)
        return cls(anchor, head, float(alpha), float(beta), excluded=excluded)

    def penalty(self, model: "nn.Module") -> "torch.Tensor":
        """alpha/2 * sum (w - w0)^2 over the backbone + beta/2 * sum w^2 over the head."""
        import torch

        params = dict(model.named_parameters())
        if self.anchor and self._dev != params[next(iter(self.anchor))].device:
            self._dev = params[next(iter(self.anchor))].device
            self.anchor = {n: a.to(self._dev) for n, a in self.anchor.items()}
        sp = sum(((params[n] - a) ** 2).sum() for n, a in self.anchor.items())
        hd = sum((params[n] ** 2).sum() for n in self.head_names)
        return 0.5 * self.alpha * torch.as_tensor(sp) + 0.5 * self.beta * torch.as_tensor(hd)

    # --- training-loop hooks ---------------------------------------------------------------------
    def param_groups(self, model: "nn.Module", lr: float, weight_decay: float) -> list[dict[str, Any]]:
        # the penalty replaces weight decay (see module doc)
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": float(lr),
                 "weight_decay": 0.0, "group_name": "all"}]

    def on_epoch_start(self, model: "nn.Module", epoch: int) -> None:
        return None

    def extra_loss(self, model: "nn.Module") -> "torch.Tensor":
        return self.penalty(model)

    def summary(self) -> dict[str, Any]:
        return {"strategy": "l2sp", "alpha": self.alpha, "beta": self.beta,
                "formula": "alpha/2 * ||w_S - w_S^0||^2 + beta/2 * ||w_head||^2",
                "anchored_tensors": len(self.anchor),
                "anchored_params": int(sum(a.numel() for a in self.anchor.values())),
                "head_tensors": len(self.head_names), "excluded_tensors": self.excluded,
                "optimizer_weight_decay": 0.0}


def _apply(model: "nn.Module", opts) -> "nn.Module":
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _hooks(model: "nn.Module", opts, source, device) -> list:
    from hackforge_edge.models.registry import head_parameter_names

    # the anchor is the source state where one exists, else the model's starting weights
    # (identical for the shared backbone: create_model loaded it from there)
    state = source.model.state_dict() if source is not None and source.model is not None else None
    return [L2SPPenalty.from_model(model, sorted(head_parameter_names(model)), alpha=opts.l2sp_alpha,
                                   beta=opts.l2sp_beta, source_state=state)]


# registered by strategies.registry (which imports this module; this one imports no registry)
NAME = "l2sp"
DESCRIPTION = ("every parameter trains, pulled toward the source weights "
                  "(alpha) and the new head toward zero (beta)")
