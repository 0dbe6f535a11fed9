"""The toolkit's own "pretrained" model: an architecture trained on the synthetic SOURCE domain.

It is what ``--weights source`` (the default) loads, so the default run transfers knowledge
from one scanner/stain domain to another without any download. The trained state_dict is
cached on disk (``$HF_EDGE_CACHE`` or ``~/.cache/hackforge-edge``) under a key covering
everything that determines it: model, image size, seed, generator version and recipe. A second
run with the same key is a cache hit and trains nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hackforge_edge.bundle import atomic_write_json, read_json
from hackforge_edge.data import synthetic
from hackforge_edge.errors import HFEdgeError

if TYPE_CHECKING:
    from torch import nn

# Bump when the recipe's code changes meaning (not its numbers: those are in the key already).
RECIPE_VERSION = 1


log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SourceRecipe:
    """How the source model is trained. Sizes are images per split; lr is AdamW's peak lr."""

    n_train: int = 800
    n_val: int = 100
    n_test: int = 200
    epochs: int = 4
    lr: float = 2e-3
    batch_size: int = 32


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else $HF_EDGE_CACHE, else ~/.cache/hackforge-edge."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("HF_EDGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hackforge-edge"


def cache_key(name: str, image_size: int, seed: int, recipe: SourceRecipe) -> str:
    """File stem naming the cached model; the hash covers the recipe and versions."""
    spec = {"model": name, "image_size": image_size, "seed": seed,
            "generator_version": synthetic.GENERATOR_VERSION, "recipe_version": RECIPE_VERSION,
            "recipe": asdict(recipe)}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}_{image_size}px_seed{seed}_gen{synthetic.GENERATOR_VERSION}_{digest}"


def _save_state(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    finally:
        tmp.unlink(missing_ok=True)


def get_source_model(name: str, build: Callable[[int], "nn.Module"], *, image_size: int, seed: int = 0,
                     recipe: SourceRecipe | None = None, cache_dir: str | os.PathLike | None = None,
                     device: str = "auto", progress: bool = True,
                     refresh: bool = False) -> tuple["nn.Module", dict[str, Any]]:
    """(model with 2-class source head, info) for registered model ``name`` at ``image_size`` px.

    ``build(seed)`` returns that architecture randomly initialised with a 2-class head (the
    registry passes it, so this module needs nothing from the registry).

    On a cache miss (or ``refresh``) trains every parameter from random init on the synthetic
    source domain and caches the weights; on a hit loads them. ``info``: cache_hit (bool),
    cache_path, model, image_size_px, seed, generator_version, recipe (epochs, split sizes, lr,
    batch size), source_test_accuracy (fraction on held-out source tiles), train_duration_s
    (seconds the original pretraining took), load_duration_s (seconds this call took).
    """
    import torch

    from hackforge_edge.data.loader import load_dataset
    from hackforge_edge.training.loop import evaluate, train

    t0 = time.perf_counter()
    recipe = recipe or SourceRecipe()
    root = cache_root(cache_dir) / "source-models"
    stem = cache_key(name, int(image_size), int(seed), recipe)
    weights_path, info_path = root / f"{stem}.pt", root / f"{stem}.json"
    model = build(seed)

    if not refresh and weights_path.is_file() and info_path.is_file():
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            info = read_json(info_path)
        except (HFEdgeError, OSError, RuntimeError, KeyError, ValueError) as exc:
            # corrupt or stale entry: say so, then retrain over it
            log.warning("source-model cache %s unusable (%s: %s); retraining",
                        weights_path, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        else:
            info.update(cache_hit=True, cache_path=str(weights_path),
                        load_duration_s=time.perf_counter() - t0)
            model.eval()
            return model, info

    splits = load_dataset("synthetic-source", image_size=image_size, seed=seed,
                          synthetic_sizes={"train": recipe.n_train, "val": recipe.n_val,
                                           "test": recipe.n_test})
    result = train(model, splits, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                   seed=seed, device=device, progress=progress,
                   progress_label=f"pretrain {name} on synthetic source")
    metrics = evaluate(model, splits.test, preprocess=splits.preprocess, device=device,
                       class_names=splits.class_names)
    model.to("cpu")
    info = {
        "model": name, "image_size_px": int(image_size), "seed": int(seed),
        "generator_version": synthetic.GENERATOR_VERSION, "recipe_version": RECIPE_VERSION,
        "recipe": asdict(recipe), "domain": synthetic.domain_description("source"),
        "class_names": splits.class_names,
        "source_test_accuracy": metrics["accuracy"],
        "source_best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "train_duration_s": result.duration_s, "device": result.device,
    }
    root.mkdir(parents=True, exist_ok=True)
    _save_state(weights_path, model.state_dict())
    atomic_write_json(info_path, info)  # written second: a hit needs both files
    info.update(cache_hit=False, cache_path=str(weights_path), load_duration_s=time.perf_counter() - t0)
    return model, info


def record_pretrain_energy(info: dict[str, Any], energy: dict[str, Any]) -> None:
    """Store the metered energy of a source pretraining next to its cached weights, so later
    runs that hit the cache can still report that one-off cost (``info["pretrain_energy"]``)."""
    weights_path = Path(info["cache_path"])
    info_path = weights_path.with_suffix(".json")
    if not info_path.is_file():
        return
    stored = read_json(info_path)
    stored["pretrain_energy"] = energy
    atomic_write_json(info_path, stored)
    info["pretrain_energy"] = energy
