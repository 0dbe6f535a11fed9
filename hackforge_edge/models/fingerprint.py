"""A stable identity for a set of weights: the sha256 of a state_dict.

Two bundles fine-tuned from the same starting weights record the same ``weights.base_sha256``
in their manifests (``hf-edge merge`` checks it). The hash covers, for every tensor in name
order: its name, dtype, shape and raw bytes (contiguous, on the CPU, native little-endian as
torch stores them), so it does not depend on dict order, device or the file it came from.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping


def state_dict_sha256(state: Mapping[str, Any], *, keep: Callable[[str], bool] | None = None) -> str:
    """sha256 (hex) of ``state`` (name -> torch.Tensor); ``keep(name)`` selects tensors."""
    h = hashlib.sha256()
    for name in sorted(state):
        if keep is not None and not keep(name):
            continue
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode("utf-8") + b"\0")
        h.update(f"{t.dtype}|{tuple(t.shape)}\0".encode("ascii"))
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16: hash its 16-bit storage
            import torch

            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def backbone_sha256(model: Any) -> tuple[str, str]:
    """(sha256, scope) of ``model``'s state_dict without its classification head: the part
    the starting weights decide (the head is re-initialised per target task and seed)."""
    from hackforge_edge.models.registry import head_module_name

    head = head_module_name(model) + "."
    digest = state_dict_sha256(model.state_dict(), keep=lambda n: not n.startswith(head))
    return digest, f"state_dict without the head ({head[:-1]}): names, dtypes, shapes, bytes"
