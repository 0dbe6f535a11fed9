"""A stable hash of a model's weights: which starting weights a fine-tune came from.

``state_dict_sha256`` covers, for every tensor in name order: its name, dtype, shape and raw
bytes (contiguous, CPU, native little-endian layout). Two state_dicts hash equal iff they hold
the same tensors under the same names, whatever order the dict was built in or the device the
tensors live on. Merging (``hf-edge merge``) uses it to check that fine-tunes share one base.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any


def state_dict_sha256(state_dict: Mapping[str, Any], *, skip_prefixes: Iterable[str] = ()) -> str:
    """Hex sha256 over (name, dtype, shape, bytes) of every tensor, sorted by name.

    ``skip_prefixes``: names starting with any of these are left out (e.g. a classifier head
    that each task replaces with a fresh one, so that fine-tunes with different class sets
    still share the hash of their backbone).
    """
    import torch

    skip = tuple(skip_prefixes)
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if skip and name.startswith(skip):
            continue
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            continue  # PEFT/torch extra state (None, dicts) carries no weights
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode("utf-8") + b"\0")
        h.update(str(t.dtype).encode() + b"\0")
        h.update(",".join(map(str, t.shape)).encode() + b"\0")
        # view as bytes: works for every dtype numpy lacks (bfloat16) too
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def backbone_sha256(state_dict: Mapping[str, Any], head: str) -> str:
    """Hash of every tensor outside the head module ``head`` (dotted path, e.g. ``fc``)."""
    return state_dict_sha256(state_dict, skip_prefixes=(head + ".",))


def model_backbone_sha256(model: Any) -> tuple[str, str]:
    """(sha256, scope) of ``model``'s starting weights without its classification head (the
    head is re-initialised per target task and seed, so fine-tunes of one base agree)."""
    from hackforge_edge.models.registry import head_module_name

    head = head_module_name(model)
    return (backbone_sha256(model.state_dict(), head),
            f"state_dict without the head {head!r}: names, dtypes, shapes, bytes (models.weights_hash)")
