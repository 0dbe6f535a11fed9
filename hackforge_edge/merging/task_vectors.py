"""Task vectors: what fine-tuning changed, tensor by tensor, against the common base.

tau_i = theta_i - theta_base for every floating-point tensor outside the classifier heads.
Integer buffers (BatchNorm's ``num_batches_tracked``) are not weights: they are left out and
carried over unchanged. Differences are taken in float64, so that base + 1 * tau_i reproduces
theta_i bit for bit after the cast back to the tensor's own dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hackforge_edge.errors import ModelError

if TYPE_CHECKING:
    import torch


def is_mergeable(t: torch.Tensor) -> bool:
    """Floating-point tensors are merged; integer/bool buffers are left alone."""
    return bool(t.is_floating_point())


@dataclass
class TaskVectors:
    """``vectors[name]``: one float64 tensor per input; ``base``: the base tensors (float64);
    ``dtypes``: each tensor's own dtype; ``carried``: integer buffers, copied from input 0."""

    base: dict[str, torch.Tensor]
    vectors: dict[str, list[torch.Tensor]]
    dtypes: dict[str, torch.dtype]
    carried: dict[str, torch.Tensor]

    @property
    def n_inputs(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0

    def numel(self) -> int:
        return int(sum(b.numel() for b in self.base.values()))


def shared_keys(base: Mapping[str, torch.Tensor], finetuned: Sequence[Mapping[str, torch.Tensor]],
                skip_prefixes: Sequence[str] = ()) -> list[str]:
    """The names every state_dict holds outside ``skip_prefixes``, checked for equal shapes.

    A tensor missing from one input or shaped differently is a ModelError naming it: such
    inputs are not fine-tunes of one architecture.
    """
    skip = tuple(skip_prefixes)
    names = sorted(k for k in base if not (skip and k.startswith(skip)))
    for i, sd in enumerate(finetuned):
        own = {k for k in sd if not (skip and k.startswith(skip))}
        missing = [k for k in names if k not in own and not k.endswith("num_batches_tracked")]
        extra = sorted(own - set(names))
        if missing or extra:
            what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
            raise ModelError(f"input {i + 1} does not have the base's tensors ({what})")
        bad = [k for k in names if k in sd and tuple(sd[k].shape) != tuple(base[k].shape)]
        if bad:
            k = bad[0]
            raise ModelError(f"input {i + 1}: tensor {k} has shape {tuple(sd[k].shape)}, the base "
                             f"{tuple(base[k].shape)}")
    return names


def task_vectors(base: Mapping[str, torch.Tensor], finetuned: Sequence[Mapping[str, torch.Tensor]],
                 skip_prefixes: Sequence[str] = ()) -> TaskVectors:
    """Task vectors of ``finetuned`` against ``base`` over their shared backbone tensors."""
    import torch

    names = shared_keys(base, finetuned, skip_prefixes)
    out = TaskVectors({}, {}, {}, {})
    for k in names:
        b = base[k].detach().cpu()
        if not is_mergeable(b):
            src = finetuned[0].get(k, b)
            out.carried[k] = src.detach().cpu().clone()
            continue
        b64 = b.to(torch.float64)
        out.base[k] = b64
        out.dtypes[k] = b.dtype
        out.vectors[k] = [sd[k].detach().cpu().to(torch.float64) - b64 for sd in finetuned]
    return out


def apply_delta(tv: TaskVectors, deltas: Mapping[str, torch.Tensor], scale: float = 1.0
                ) -> dict[str, torch.Tensor]:
    """base + scale * delta for every merged tensor, cast back to its dtype; plus the carried
    integer buffers. ``deltas`` must cover every tensor of ``tv``."""
    merged: dict[str, torch.Tensor] = {}
    for k, b in tv.base.items():
        d = deltas[k]
        merged[k] = (b + (d if scale == 1.0 else scale * d)).to(tv.dtypes[k])
    merged.update({k: v.clone() for k, v in tv.carried.items()})
    return merged
