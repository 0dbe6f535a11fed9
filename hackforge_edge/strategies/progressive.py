"""Progressive unfreezing with discriminative learning rates (ULMFiT, Howard & Ruder 2018).

The model's layer groups (:mod:`hackforge_edge.strategies.layer_groups`, head last) unfreeze
from the top: in epoch e (1-based) the top ``min(L, 1 + (e - 1) // unfreeze_every)`` groups
train. Group l of L (1 = input side, L = head) trains at ``lr / lr_decay ** (L - l)``. With
``slanted_triangular`` the per-step schedule is ULMFiT's slanted triangle (linear warm-up over
the first 10 % of steps to each group's peak, then linear decay to peak / 32), built with
PyTorch's ``OneCycleLR`` (linear annealing, three_phase=False, div_factor = 32,
final_div_factor = 1: exactly the STLR of the paper with cut_frac 0.1, ratio 32); otherwise the
loop's cosine decay applies to every group.

Every parameter is in the optimizer from the first step, each in its group; a frozen group's
parameters have ``requires_grad=False``, so they get no gradient and AdamW skips them
(weight decay included). Unfreezing is flipping that flag at the start of an epoch: the
optimizer is updated, never rebuilt, so Adam's moments of already-training groups survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hackforge_edge.strategies.layer_groups import LayerGroup, layer_groups

if TYPE_CHECKING:
    import torch
    from torch import nn

# ULMFiT's slanted triangular learning rate constants (Howard & Ruder 2018, eq. 3)
STLR_CUT_FRAC = 0.1
STLR_RATIO = 32.0


@dataclass
class ProgressiveUnfreezing:
    """Training-loop hooks of the ``progressive`` strategy (see module doc)."""

    groups: list[LayerGroup]
    unfreeze_every: int = 1
    lr_decay: float = 2.6
    slanted_triangular: bool = False
    epochs_log: list[dict[str, Any]] = field(default_factory=list)
    base_lr: float | None = None
    group_sizes: list[int] = field(default_factory=list)  # scalars per group

    @classmethod
    def for_model(cls, model: "nn.Module", *, unfreeze_every: int = 1, lr_decay: float = 2.6,
                  slanted_triangular: bool = False) -> "ProgressiveUnfreezing":
        groups = layer_groups(model)
        params = dict(model.named_parameters())
        sizes = [sum(params[n].numel() for n in g.param_names) for g in groups]
        return cls(groups, int(unfreeze_every), float(lr_decay), bool(slanted_triangular),
                   group_sizes=sizes)

    def unfrozen_count(self, epoch: int) -> int:
        """Number of top groups that train in 1-based ``epoch``."""
        return min(len(self.groups), 1 + (int(epoch) - 1) // self.unfreeze_every)

    def group_lrs(self, lr: float) -> list[float]:
        """Peak learning rate of each group, input side first: lr / lr_decay ** (L - l)."""
        n = len(self.groups)
        return [float(lr) / self.lr_decay ** (n - 1 - i) for i in range(n)]

    def freeze_for_epoch(self, model: "nn.Module", epoch: int) -> list[str]:
        """Set requires_grad for ``epoch``; return the names of the groups that train."""
        params = dict(model.named_parameters())
        k = self.unfrozen_count(epoch)
        train = self.groups[len(self.groups) - k:]
        on = {n for g in train for n in g.param_names}
        for n, p in params.items():
            p.requires_grad_(n in on)
        return [g.name for g in train]

    # --- training-loop hooks (hackforge_edge.training.loop.TrainHook) ---------------------------
    def param_groups(self, model: "nn.Module", lr: float, weight_decay: float) -> list[dict[str, Any]]:
        params = dict(model.named_parameters())
        self.base_lr = float(lr)
        return [{"params": [params[n] for n in g.param_names], "lr": glr,
                 "weight_decay": float(weight_decay), "group_name": g.name}
                for g, glr in zip(self.groups, self.group_lrs(lr))]

    def make_scheduler(self, optimizer: "torch.optim.Optimizer", total_steps: int):
        if not self.slanted_triangular:
            return None
        import torch

        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=int(total_steps) + 1,
            pct_start=STLR_CUT_FRAC, anneal_strategy="linear", cycle_momentum=False,
            div_factor=STLR_RATIO, final_div_factor=1.0, three_phase=False)

    def on_epoch_start(self, model: "nn.Module", epoch: int) -> None:
        names = self.freeze_for_epoch(model, epoch)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.epochs_log.append({"epoch": int(epoch), "unfrozen_groups": names,
                                "trainable_params": int(trainable)})

    def extra_loss(self, model: "nn.Module") -> None:
        return None

    def summary(self) -> dict[str, Any]:
        lrs = self.group_lrs(self.base_lr) if self.base_lr is not None else None
        return {
            "strategy": "progressive",
            "unfreeze_every": self.unfreeze_every, "lr_decay": self.lr_decay,
            "schedule": "slanted_triangular" if self.slanted_triangular else "cosine",
            "stlr": ({"cut_frac": STLR_CUT_FRAC, "ratio": STLR_RATIO, "implementation":
                      "torch.optim.lr_scheduler.OneCycleLR (linear, two-phase)"}
                     if self.slanted_triangular else None),
            "groups": [{"name": g.name, "tensors": len(g.param_names),
                        "params": self.group_sizes[i] if self.group_sizes else None,
                        "peak_lr": None if lrs is None else lrs[i]}
                       for i, g in enumerate(self.groups)],
            "epochs": list(self.epochs_log),
        }


def _apply(model: "nn.Module", opts) -> "nn.Module":
    """Epoch 1's state: only the top group (the head) trains; the hook unfreezes the rest."""
    hook = ProgressiveUnfreezing.for_model(model, unfreeze_every=opts.unfreeze_every,
                                           lr_decay=opts.lr_decay)
    hook.freeze_for_epoch(model, 1)
    model.hf_edge_meta["layer_groups"] = [g.name for g in hook.groups]
    return model


def _hooks(model: "nn.Module", opts, source, device) -> list:
    return [ProgressiveUnfreezing.for_model(model, unfreeze_every=opts.unfreeze_every,
                                            lr_decay=opts.lr_decay,
                                            slanted_triangular=opts.slanted_triangular)]


# registered by strategies.registry (which imports this module; this one imports no registry)
NAME = "progressive"
DESCRIPTION = ("layer groups unfreeze one at a time from the head down, with "
                  "discriminative learning rates (ULMFiT)")
