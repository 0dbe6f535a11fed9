"""Tiny input bundles for the merge tests, written directly (no training run: seconds matter).

Each "fine-tune" is the seeded tinycnn base plus a seeded perturbation (what matters to a merge
is the weights, not how they were found), saved the way train-and-export saves them:
weights.safetensors, labels.json, preprocess.json and a manifest recording base_sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIZE = 16


def image_folder(root: Path, classes: list[str], per_class: int = 10, seed: int = 0) -> Path:
    """``root/<class>/*.png``: small random RGB images (a real ImageFolder for load_dataset)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            arr[..., ci % 3] = np.clip(arr[..., ci % 3].astype(int) + 60, 0, 255)  # a learnable cue
            Image.fromarray(arr).save(root / c / f"{c}_{i:03d}.png")
    return root


def base_state(seed: int = 0):
    from hackforge_edge.models.registry import create_model

    return create_model("tinycnn", 2, "none", seed=seed).state_dict()


def finetuned_state(num_classes: int, perturb_seed: int, base_seed: int = 0, scale: float = 0.05):
    import torch

    from hackforge_edge.models.registry import create_model

    model = create_model("tinycnn", num_classes, "none", seed=base_seed)
    g = torch.Generator().manual_seed(perturb_seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and not k.endswith("running_var"):
                v.add_(scale * torch.randn(v.shape, generator=g))
    return model.state_dict()


def write_input_bundle(out: Path, data: Path, classes: list[str], perturb_seed: int, *,
                       base_seed: int = 0, model: str = "tinycnn", base_sha256: str | None = None) -> Path:
    from hackforge_edge import bundle
    from hackforge_edge.data.preprocess import ImagePreprocess
    from hackforge_edge.models.weights_file import WEIGHTS, save_weights
    from hackforge_edge.models.weights_hash import backbone_sha256

    state = finetuned_state(len(classes), perturb_seed, base_seed)
    out.mkdir(parents=True)
    save_weights(state, out / WEIGHTS)
    bundle.atomic_write_json(out / "labels.json", classes)
    bundle.atomic_write_json(out / "preprocess.json",
                             ImagePreprocess(image_size=(IMAGE_SIZE, IMAGE_SIZE)).to_json())
    bundle.atomic_write_json(out / "metrics.json", {"accuracy": 0.5, "kind": "measured"})
    sha = base_sha256 or backbone_sha256(base_state(base_seed), "head")
    bundle.write_manifest(out, config={"model": model, "strategy": "finetune", "data": str(data),
                                       "image_size": IMAGE_SIZE, "seed": base_seed, "data_fraction": 1.0},
                          seed=base_seed, started_at=bundle.utc_now(),
                          extra={"weights": {"kind": "none", "base_sha256": sha}})
    return out
