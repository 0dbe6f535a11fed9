"""The base the inputs were fine-tuned from: found, loaded and checked against their hash.

Each bundle's manifest records ``weights.base_sha256``: the hash of the starting weights
outside the (fresh, per-task) classifier head. The base comes from ``--base PATH`` (a state_dict
.pt/.pth or .safetensors), or is rebuilt the way the run built it: the cached source model
(``weights.kind == "source"``) or the seeded random init (``"none"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import ModelError

if TYPE_CHECKING:
    import torch


def load_base(model_name: str, manifest: dict[str, Any], base: str | None, *,
              device: str = "auto") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(base state_dict, description) for the inputs whose first manifest is ``manifest``."""
    weights = manifest.get("weights") or {}
    cfg = manifest.get("config") or {}
    if base is not None:
        from hackforge_edge.models.weights_file import load_weights

        return load_weights(Path(base)), {"origin": "--base", "path": str(Path(base).resolve())}
    kind = weights.get("kind")
    if kind == "source":
        from hackforge_edge.models.registry import source_model

        model, info = source_model(model_name, image_size=int(weights["image_size_px"]),
                                       seed=int(weights.get("seed", 0)), device=device, progress=False)
        return model.state_dict(), {"origin": "source model cache", "cache_hit": info.get("cache_hit"),
                                    "path": info.get("cache_path")}
    if kind == "none":
        from hackforge_edge.models.registry import create_model

        model = create_model(model_name, 2, "none", seed=int(cfg.get("seed", 0)))
        return model.state_dict(), {"origin": "seeded random init", "seed": int(cfg.get("seed", 0))}
    if kind == "file" and weights.get("path") and Path(weights["path"]).is_file():
        from hackforge_edge.models.weights_file import load_weights

        return load_weights(Path(weights["path"])), {"origin": "weights file", "path": weights["path"]}
    raise ModelError(f"cannot rebuild the base of weights kind {kind!r} here; pass --base PATH "
                     "(the starting state_dict, .pt/.pth or .safetensors)")


def check_base(state: dict[str, torch.Tensor], head: str, expected: str, origin: str) -> str:
    """Hash ``state`` outside ``head``; a ModelError unless it equals ``expected``."""
    from hackforge_edge.models.weights_hash import backbone_sha256

    got = backbone_sha256(state, head)
    if got != expected:
        raise ModelError(f"the base ({origin}) has sha256 {got[:12]}, the inputs were fine-tuned from "
                         f"{expected[:12]}: not their base")
    return got
