"""The fine-tuned PyTorch weights inside a bundle (``weights.safetensors``).

An ONNX model cannot be merged in weight space without its PyTorch names; ``hf-edge merge``
reads these. safetensors (not pickle) so that opening a bundle never executes code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import ModelError

if TYPE_CHECKING:
    import torch

WEIGHTS = "weights.safetensors"


def save_weights(state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write ``state_dict`` (CPU, contiguous copies) atomically to ``path`` (.safetensors)."""
    from safetensors.torch import save

    from hackforge_edge.bundle import atomic_write_bytes

    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()
             if hasattr(v, "detach")}
    return atomic_write_bytes(path, save(plain, metadata=metadata))


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.safetensors`` file, or a ``.pt/.pth`` state_dict (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    from hackforge_edge.models.registry import _read_state_dict

    return _read_state_dict(path)


def describe(state: dict[str, Any]) -> dict[str, Any]:
    """Tensor count and parameter count of a state_dict, for manifests."""
    return {"tensors": len(state), "numel": int(sum(int(v.numel()) for v in state.values()))}
