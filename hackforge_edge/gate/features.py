"""Candidate starts and their forward passes: backbone features and the source head's softmax.

Nothing here trains: a start is loaded (the cached synthetic-source model, torchvision's
ImageNet weights, a state_dict file, or a random init) and images are passed through it once,
in eval mode. The features are the input of the model's classifier head (captured with a
forward hook), so they are what a new head would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hackforge_edge.errors import ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

START_CHOICES = ("none", "source", "imagenet")


@dataclass
class CandidateStart:
    """A loaded start. ``has_source_head``: the head is the one trained with the weights (its
    softmax feeds LEEP); otherwise it is a random init and LEEP is not defined."""

    name: str  # as the user gave it
    kind: str  # none | source | imagenet | file
    model: "nn.Module"
    has_source_head: bool
    info: dict[str, Any] = field(default_factory=dict)


def check_start(name: str) -> None:
    """One line naming the valid starts if ``name`` is neither a choice nor an existing file."""
    if name not in START_CHOICES and not Path(name).is_file():
        raise UsageError(f"unknown start {name!r}: use one of {', '.join(START_CHOICES)} or a "
                         f"path to a .pt/.pth state_dict")


def _head_classes(state: dict[str, Any], head: str) -> int | None:
    w = state.get(f"{head}.weight")
    return int(w.shape[0]) if w is not None and getattr(w, "ndim", 0) == 2 else None


def load_start(name: str, *, model: str, image_size: int, seed: int = 0, source_seed: int = 0,
               progress: bool = False, device: str = "cpu") -> CandidateStart:
    """Build registered ``model`` from start ``name`` (none | source | imagenet | PATH).

    "source" loads (or, on a cache miss, pretrains) the toolkit's synthetic-source model with its
    2-class head; "imagenet" needs torchvision's download; PATH keeps the file's head when it has
    one. "none" is a seeded random init: the scratch reference.
    """
    from hackforge_edge.models.registry import (
        _read_state_dict,
        create_model,
        get_spec,
        load_backbone,
    )

    check_start(name)
    spec = get_spec(model)
    if name == "none":
        m = create_model(model, 2, "none", seed=seed)
        return CandidateStart(name, "none", m, False, {"kind": "none", "seed": seed})
    if name == "source":
        from hackforge_edge.models.registry import source_model

        m, info = source_model(model, image_size=int(image_size), seed=source_seed,
                                   progress=progress, device=device)
        m.hf_edge_meta = {"name": model, "head": spec.head, "num_classes": 2,
                          "weights": {"kind": "source", **info}}
        return CandidateStart(name, "source", m, True, {"kind": "source", **info})
    if name == "imagenet":
        if not spec.imagenet:
            raise UsageError(f"start 'imagenet': model {model!r} has no ImageNet weights")
        m = create_model(model, 1000, "none", seed=seed)
        try:
            state, tag = _imagenet_state(model)
        except Exception as exc:  # noqa: BLE001 - URLError, OSError, hash mismatch: all mean "no weights here"
            raise ModelError(f"start 'imagenet': torchvision's weights for {model} could not be "
                             f"loaded ({type(exc).__name__}: {exc})") from None
        loaded = load_backbone(m, state, "ImageNet weights")
        return CandidateStart(name, "imagenet", m, bool(loaded["head_loaded"]),
                              {"kind": "imagenet", "torchvision_weights": tag})
    path = Path(name)
    state = _read_state_dict(path)
    n_src = _head_classes(state, spec.head) or 2
    m = create_model(model, max(2, n_src), "none", seed=seed)
    loaded = load_backbone(m, state, f"start {path}")
    return CandidateStart(name, "file", m, bool(loaded["head_loaded"]),
                          {"kind": "file", "path": str(path.resolve()), **loaded})


def _imagenet_state(model: str) -> tuple[dict[str, Any], str]:
    import torchvision

    weights = torchvision.models.get_model_weights(model).DEFAULT
    return torchvision.models.get_model(model, weights=weights).state_dict(), str(weights)


def forward_features(start: CandidateStart, x: np.ndarray, *, batch_size: int = 64,
                     device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """(features N x D, source softmax N x Z or None) for float32 N x 3 x H x W ``x``.

    Features are the head's input; the softmax is returned only when the start has a source
    head. One forward pass, eval mode (BatchNorm uses its running statistics), no gradients.
    """
    import torch

    from hackforge_edge.models.registry import head_module_name
    from hackforge_edge.training.loop import resolve_device

    dev = resolve_device(device)
    model = start.model.to(dev).eval()
    head = model.get_submodule(head_module_name(model))
    captured: list["torch.Tensor"] = []
    hook = head.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    feats, probs = [], []
    try:
        with torch.inference_mode():
            for s in range(0, len(x), batch_size):
                captured.clear()
                logits = model(torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(dev))
                feats.append(captured[0].flatten(1).float().cpu().numpy())
                probs.append(torch.softmax(logits.float(), 1).cpu().numpy())
    finally:
        hook.remove()
    if not feats:
        raise UsageError("no images to pass through the model")
    f = np.concatenate(feats).astype(np.float64)
    return f, (np.concatenate(probs).astype(np.float64) if start.has_source_head else None)
