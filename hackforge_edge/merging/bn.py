"""BatchNorm running statistics after a merge, re-estimated on target data.

Averaging weights does not average the activations they produce: the merged running means
and variances no longer describe the merged network's features. ``torch.optim.swa_utils.update_bn``
resets them and recomputes them (cumulative average, momentum None) from a forward pass over
the given images, exactly as after stochastic weight averaging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn


def has_batchnorm(model: nn.Module) -> bool:
    from torch.nn.modules.batchnorm import _BatchNorm

    return any(isinstance(m, _BatchNorm) for m in model.modules())


def reestimate_bn(model: nn.Module, batches: Sequence[np.ndarray], device: str = "cpu") -> dict[str, Any]:
    """Recompute every BatchNorm's running statistics from ``batches`` (float32 NCHW arrays,
    the serving preprocessing); the model is left in eval mode. Returns what was done."""
    import torch
    from torch.optim.swa_utils import update_bn

    if not has_batchnorm(model):
        return {"updated": False, "reason": "no BatchNorm layers"}
    loader = [torch.from_numpy(np.ascontiguousarray(b)) for b in batches if len(b)]
    n = int(sum(len(b) for b in loader))
    with torch.no_grad():
        update_bn(loader, model, device=torch.device(device))
    model.eval()
    return {"updated": True, "images": n, "batches": len(loader),
            "method": "torch.optim.swa_utils.update_bn (cumulative average over the images)"}
