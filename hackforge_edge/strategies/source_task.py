"""The source task a transfer starts from: its model (with its own head) and its data.

Used for two things: EWC's Fisher (computed on source training images at the source weights,
cached next to the cached source model) and measuring forgetting (source test accuracy of the
source model before transfer and of the transferred model after it).

Where a source task exists:
- ``--weights source``: the toolkit's cached source model and the synthetic source domain,
  regenerated exactly as the model was trained on (same seed, streams and split sizes).
- ``--weights PATH --source-data DIR``: the state_dict (its head must fit DIR's classes) and
  DIR split like any image folder.
- otherwise (``none``, ``imagenet``, a PATH alone) there is none: EWC is refused, retention is
  not measured.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

FISHER_SAMPLES = 256  # source training images the Fisher averages over ("a few hundred")
FISHER_VERSION = 1  # bump when the Fisher's computation changes meaning


def source_task_problem(weights: str, source_data: str | None, strategy: str) -> str | None:
    """One line saying why these settings cannot work, or None (checked before any work)."""
    w = str(weights)
    if source_data is not None:
        if w in ("none", "imagenet", "source"):
            return (f"--source-data goes with --weights PATH (the state_dict trained on it); with "
                    f"--weights {w} the source data is {'the synthetic source domain' if w == 'source' else 'not available'}")
        if not Path(source_data).is_dir():
            return f"--source-data {source_data}: no such directory"
    if strategy == "ewc":
        if w in ("none", "imagenet"):
            return (f"--strategy ewc needs source data for its Fisher, and --weights {w} has none here: "
                    f"use --weights source, or --weights PATH with --source-data DIR")
        if w != "source" and source_data is None:
            return "--strategy ewc with --weights PATH needs --source-data DIR (the data PATH was trained on)"
    return None


@dataclass
class SourceTask:
    """A source model (own head) and a way to get its train/test data. Data load lazily."""

    model_name: str
    image_size: int
    seed: int
    kind: str  # "synthetic-source" | "imagefolder"
    model: "nn.Module | None"
    class_names: list[str]
    cache_dir: Path
    cache_stem: str
    data_dir: str | None = None
    description: dict[str, Any] = field(default_factory=dict)
    _splits: Any = None

    def _synthetic_split(self, name: str):
        from hackforge_edge.data import synthetic
        from hackforge_edge.data.splits import Split
        from hackforge_edge.models.source import SourceRecipe

        recipe = SourceRecipe()
        n = {"train": recipe.n_train, "val": recipe.n_val, "test": recipe.n_test}[name]
        stream = ("train", "val", "test").index(name)
        imgs, labels = synthetic.generate(n, image_size=self.image_size, domain="source",
                                          seed=self.seed, stream=stream)
        return Split(imgs, labels, [f"source-{name}-{i:05d}" for i in range(n)])

    def split(self, name: str):
        """The source ``train`` or ``test`` split (uint8 images)."""
        if self.kind == "synthetic-source":
            return self._synthetic_split(name)
        if self._splits is None:
            from hackforge_edge.data.loader import load_dataset

            self._splits = load_dataset(self.data_dir, image_size=self.image_size, seed=self.seed)
        return self._splits.split(name)

    def preprocess(self):
        from hackforge_edge.data.preprocess import ImagePreprocess

        return ImagePreprocess(image_size=(self.image_size, self.image_size))

    def fisher(self, *, n_samples: int = FISHER_SAMPLES, device: str = "auto"):
        """(name -> diagonal empirical Fisher, info) of the source model on source training
        images; read from / written to a cache file next to the source model."""
        import torch

        from hackforge_edge.strategies.ewc import empirical_fisher
        from hackforge_edge.training.loop import iter_batches, resolve_device

        key = {"stem": self.cache_stem, "n_samples": int(n_samples), "version": FISHER_VERSION,
               "kind": "empirical", "data": self.description}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        path = self.cache_dir / f"{self.cache_stem}.fisher-{digest}.pt"
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                return saved["fisher"], {**saved["info"], "cache_hit": True, "cache_path": str(path)}
            except (OSError, RuntimeError, KeyError) as exc:  # corrupt entry: recompute over it
                import logging
                logging.getLogger(__name__).warning("Fisher cache %s unusable (%s); recomputing", path, exc)
        train = self.split("train")
        take = train.subset(list(range(min(int(n_samples), len(train)))))
        model = self.model.to(resolve_device(device))
        fisher, info = empirical_fisher(model, iter_batches(take, self.preprocess(), 16))
        model.to("cpu")
        info = {**info, "source": self.kind, "data": self.description}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save({"fisher": fisher, "info": info}, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return fisher, {**info, "cache_hit": False, "cache_path": str(path)}


def load_source_task(model_name: str, weights: str, *, image_size: int, seed: int,
                     source_data: str | None = None, allow_pretrain: bool = True,
                     device: str = "auto") -> SourceTask | None:
    """The source task behind ``weights`` (see module doc), or None where there is none.

    ``allow_pretrain=False``: with ``--weights source`` and no cached source model, return a
    task without a model (its data still measure the transferred model) instead of training one.
    """
    from hackforge_edge.models.registry import source_model
    from hackforge_edge.models.source import SourceRecipe, cache_key, cache_root

    w = str(weights)
    if w == "source":
        from hackforge_edge.data import synthetic

        stem = cache_key(model_name, int(image_size), int(seed), SourceRecipe())
        root = cache_root() / "source-models"
        model = None
        if allow_pretrain or (root / f"{stem}.pt").is_file():
            model, _ = source_model(model_name, image_size=int(image_size), seed=int(seed),
                                        progress=False, device=device)
        return SourceTask(model_name, int(image_size), int(seed), "synthetic-source", model,
                          list(synthetic.CLASS_NAMES), root, stem,
                          description={"kind": "synthetic", "domain": "source", "seed": int(seed),
                                       "generator_version": synthetic.GENERATOR_VERSION})
    if source_data is None or w in ("none", "imagenet"):
        return None
    from hackforge_edge.data.imagefolder import scan
    from hackforge_edge.models.registry import create_model

    _, _, class_names = scan(source_data)
    path = Path(w)
    model = create_model(model_name, len(class_names), w, seed=seed)
    if not model.hf_edge_meta["weights"].get("head_loaded"):
        raise UsageError(f"--weights {w}: its head does not fit the {len(class_names)} classes of "
                         f"--source-data {source_data}, so it is not the model trained on that data")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model.eval()
    return SourceTask(model_name, int(image_size), int(seed), "imagefolder", model, class_names,
                      cache_root() / "fisher", f"{model_name}_{image_size}px_{sha[:16]}",
                      data_dir=str(source_data),
                      description={"kind": "imagefolder", "root": str(Path(source_data).resolve()),
                                   "weights_sha256": sha, "seed": int(seed)})


def source_retention(model: "nn.Module", task: SourceTask, *, target_class_names: list[str],
                     device: str = "auto") -> dict[str, Any]:
    """Source test accuracy before transfer (source model) and after it (transferred model).

    ``accuracy_after``: the transferred model as deployed, scored on the source test split;
    only when the target classes equal the source classes (same label space). Always, when
    the source model exists: ``accuracy_after_source_head``, the transferred backbone (LoRA
    folded, BatchNorm statistics as adapted) with the source model's head put back: how much
    of the source task survives in the features. Retentions are after / before.
    """
    from hackforge_edge.export import fold_lora
    from hackforge_edge.models.registry import head_module_name
    from hackforge_edge.training.loop import evaluate

    test = task.split("test")
    pre = task.preprocess()
    out: dict[str, Any] = {"kind": "measured", "split": "source test", "n_images": int(len(test)),
                           "source": task.description, "source_class_names": task.class_names}
    before = None
    if task.model is not None:
        before = evaluate(task.model, test, preprocess=pre, device=device)["accuracy"]
        task.model.to("cpu")
    out["accuracy_before"] = before
    after = None
    if list(target_class_names) == list(task.class_names):
        after = evaluate(model, test, preprocess=pre, device=device)["accuracy"]
    out["accuracy_after"] = after
    with_head = None
    if task.model is not None:
        plain = fold_lora(model)
        head = head_module_name(task.model)
        src_head = copy.deepcopy(task.model.get_submodule(head))
        own = plain.get_submodule(head_module_name(plain))
        if tuple(own.weight.shape) == tuple(src_head.weight.shape):
            parent, _, leaf = head_module_name(plain).rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, leaf, src_head)
            with_head = evaluate(plain, test, preprocess=pre, device=device)["accuracy"]
    out["accuracy_after_source_head"] = with_head
    out["retention"] = None if after is None or not before else after / before
    out["retention_source_head"] = None if with_head is None or not before else with_head / before
    out["method"] = ("accuracy on the source-domain test split: source model with its head "
                     "(before), transferred model as deployed (after; same label space only), "
                     "transferred backbone with the source head put back (after_source_head)")
    return out
