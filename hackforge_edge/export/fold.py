"""Fold LoRA adapters into the base weights before export (PEFT ``merge_and_unload``).

Merging is destructive and loses precision in bf16/fp16, so it always happens on a deep copy
cast to float32; the caller's model keeps its adapters, dtype and trainable flags.
"""

from __future__ import annotations

import copy
import sys

import torch
from torch import nn

from hackforge_edge.errors import ExportError


def _tuner_layer_cls():
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # peft absent: no model can carry PEFT adapters
        return None
    return BaseTunerLayer


def _peft_wrapper_classes() -> tuple[type, ...]:
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:
        return ()
    return (PeftModel, BaseTuner)


def has_lora(model: nn.Module) -> bool:
    """True when ``model`` (or any submodule) is a PEFT model or holds a PEFT tuner layer."""
    if "peft" not in sys.modules:
        return False  # a PEFT layer cannot exist before peft is imported (and importing it costs ~2 s)
    wrappers = _peft_wrapper_classes()
    tuner = _tuner_layer_cls()
    for module in model.modules():
        if wrappers and isinstance(module, wrappers):
            return True
        if tuner is not None and isinstance(module, tuner):
            return True
    return False


def _merge_injected(root: nn.Module) -> None:
    """Merge and unload tuner layers injected with ``peft.inject_adapter_in_model`` (in place).

    Mirrors ``BaseTuner._unload_and_optionally_merge`` (peft/tuners/tuners_utils.py), which is
    only reachable through a ``PeftModel``/``LoraModel``: outermost tuner layers first, using
    the layer's own ``unload_and_optionally_merge_module`` where it has one (modules_to_save
    wrappers, MultiheadAttention), else ``merge()`` + ``get_base_layer()``.
    """
    tuner = _tuner_layer_cls()
    from peft.utils.other import AuxiliaryTrainingWrapper

    replaceable = (tuner, AuxiliaryTrainingWrapper)
    for _ in range(sum(1 for _ in root.modules()) + 1):  # each pass removes one wrapper
        target_key = next(
            (key for key, mod in root.named_modules() if key and isinstance(mod, replaceable)), None
        )
        if target_key is None:
            return
        parent_key, _, child = target_key.rpartition(".")
        parent = root.get_submodule(parent_key) if parent_key else root
        target = parent.get_submodule(child)
        if hasattr(target, "unload_and_optionally_merge_module"):
            replacement = target.unload_and_optionally_merge_module(
                merge=True, safe_merge=True, adapter_names=None
            )
        else:
            target.merge(safe_merge=True)
            replacement = target.get_base_layer()
        setattr(parent, child, replacement)
    raise ExportError("LoRA merge did not converge: PEFT layers keep reappearing")


def fold_lora(model: nn.Module) -> nn.Module:
    """Return a float32 copy of ``model`` with every LoRA adapter merged into its base weights.

    Works for a ``peft.PeftModel`` (``merge_and_unload``), for a plain module with adapters
    injected by ``peft.inject_adapter_in_model``, and for a module that holds a ``PeftModel``
    as a submodule. The result is a plain torch module with no PEFT layers, in eval mode.
    A model without adapters comes back as an fp32 eval-mode copy with the same weights.
    The argument is never modified: it keeps its adapters, dtype and ``requires_grad`` flags.

    Raises ExportError if PEFT refuses to merge (e.g. NaN produced by the merge) or if a tuner
    layer survives the merge.
    """
    if not isinstance(model, nn.Module):
        raise ExportError(f"fold_lora expects a torch.nn.Module, got {type(model).__name__}")
    work = copy.deepcopy(model).float()
    if has_lora(work):
        try:
            with torch.no_grad():
                work = _merge_all(work)
        except ExportError:
            raise
        except (ValueError, RuntimeError, TypeError) as err:
            raise ExportError(f"LoRA merge failed: {type(err).__name__}: {err}") from err
        if has_lora(work):
            raise ExportError("LoRA merge left PEFT layers in the model; cannot export it folded")
    work.eval()
    return work


def _merge_all(work: nn.Module) -> nn.Module:
    wrappers = _peft_wrapper_classes()
    if isinstance(work, wrappers):
        # safe_merge: PEFT checks the merged weights for NaN before writing them
        return work.merge_and_unload(safe_merge=True)
    # a PeftModel nested inside a user wrapper: replace the outermost one by its merged base
    # model, then look again (named_modules is pre-order, so the first hit is the outermost)
    while True:
        key = next((k for k, m in work.named_modules() if k and isinstance(m, wrappers)), None)
        if key is None:
            break
        parent_key, _, child = key.rpartition(".")
        parent = work.get_submodule(parent_key) if parent_key else work
        setattr(parent, child, parent.get_submodule(child).merge_and_unload(safe_merge=True))
    _merge_injected(work)
    return work
