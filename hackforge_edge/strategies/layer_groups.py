"""Layer groups: a model's parameters split into ordered blocks, input side first, head last.

Progressive unfreezing (ULMFiT) and discriminative learning rates work on these groups. They
are found generically, with a per-architecture override where the generic rule would cut in
the wrong place:

- **ResNet** (torchvision: ``conv1``/``bn1``/``layer1..layer4``): ``stem``, ``layer1`` ..
  ``layer4``, then the head (override: the four stages are separate Sequentials, so no single
  sequence holds the blocks).
- **Generic** (MobileNet/EfficientNet ``features``, transformers BERT ``encoder.layer`` /
  DistilBERT ``transformer.layer``, the test CNN's ``features``): the ``nn.Sequential`` or
  ``nn.ModuleList`` outside the head with the most parameter-holding children is the backbone
  sequence; each such child is a group, except that a bare normalisation layer joins the group
  before it (a conv and its BatchNorm train together). Parameters before the sequence form one
  group (``embeddings`` when they all live under a module of that name, else ``stem``);
  parameters between it and the head (a pooler, a pre-classifier) form ``neck``.
- The **head** (``hf_edge_meta["head"]``) is always the last group.

Every parameter lands in exactly one group; :func:`layer_groups` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from hackforge_edge.errors import ModelError
from hackforge_edge.models.registry import head_module_name

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LayerGroup:
    """A named block of parameters (names as in ``model.named_parameters()``)."""

    name: str
    param_names: tuple[str, ...]


def _params_under(model: "nn.Module", prefix: str) -> list[str]:
    return [n for n, _ in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]


def _resnet_groups(model: "nn.Module") -> list[tuple[str, list[str]]] | None:
    if not all(hasattr(model, a) for a in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")):
        return None
    return [("stem", _params_under(model, "conv1") + _params_under(model, "bn1"))] + [
        (f"layer{i}", _params_under(model, f"layer{i}")) for i in range(1, 5)]


# Per-architecture overrides, tried in order; each returns backbone groups or None (not mine).
OVERRIDES: list[Callable[["nn.Module"], list[tuple[str, list[str]]] | None]] = [_resnet_groups]


def _is_norm(module: "nn.Module") -> bool:
    from torch import nn

    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))


def _backbone_sequence(model: "nn.Module", head: str) -> tuple[str, list[tuple[str, "nn.Module"]]] | None:
    """(name, param-holding children) of the largest Sequential/ModuleList outside the head."""
    from torch import nn

    best = None
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Sequential, nn.ModuleList)) or not name:
            continue
        if name == head or name.startswith(head + ".") or head.startswith(name + "."):
            continue
        kids = [(f"{name}.{k}", c) for k, c in mod.named_children()
                if any(True for _ in c.parameters())]
        if len(kids) >= 2 and (best is None or len(kids) > len(best[1])):
            best = (name, kids)
    return best


def _generic_groups(model: "nn.Module", head: str) -> list[tuple[str, list[str]]]:
    seq = _backbone_sequence(model, head)
    if seq is None:
        return []
    groups: list[tuple[str, list[str]]] = []
    for name, child in seq[1]:
        params = _params_under(model, name)
        if groups and _is_norm(child):
            groups[-1][1].extend(params)  # a bare norm layer trains with the layer before it
        else:
            groups.append((name, params))
    return groups


def layer_groups(model: "nn.Module") -> list[LayerGroup]:
    """Ordered layer groups of a model built by ``create_model`` (input side first, head last)."""
    head = head_module_name(model)
    all_names = [n for n, _ in model.named_parameters()]
    head_names = _params_under(model, head)
    if not head_names:
        raise ModelError(f"{model.hf_edge_meta.get('name')}: head {head!r} has no parameters")
    body = next((g for g in (o(model) for o in OVERRIDES) if g is not None), None)
    if body is None:
        body = _generic_groups(model, head)
    grouped = {n for _, names in body for n in names} | set(head_names)
    order = {n: i for i, n in enumerate(all_names)}
    first = min((order[n] for _, names in body for n in names), default=len(all_names))
    last = max((order[n] for _, names in body for n in names), default=-1)
    before = [n for n in all_names if n not in grouped and order[n] < first]
    after = [n for n in all_names if n not in grouped and order[n] > last]
    inside = [n for n in all_names if n not in grouped and first < order[n] < last]
    for n in inside:  # a stray parameter between groups joins the group that precedes it
        idx = max(i for i, (_, names) in enumerate(body) if any(order[m] < order[n] for m in names))
        body[idx][1].append(n)
    out: list[LayerGroup] = []
    if before:
        label = "embeddings" if all(".embeddings." in f".{n}" for n in before) else "stem"
        out.append(LayerGroup(label, tuple(before)))
    out += [LayerGroup(name, tuple(sorted(names, key=order.get))) for name, names in body if names]
    if after:
        out.append(LayerGroup("neck", tuple(after)))
    out.append(LayerGroup("head", tuple(head_names)))
    seen = [n for g in out for n in g.param_names]
    if sorted(seen) != sorted(all_names):  # every parameter in exactly one group
        raise ModelError(f"layer groups of {model.hf_edge_meta.get('name')} do not partition its parameters")
    return out
