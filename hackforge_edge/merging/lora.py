"""LoRA adapters trained on one base, combined with PEFT's ``LoraModel.add_weighted_adapter``.

Only two combinations are offered:

* ``cat`` (exact): the new adapter stacks every A and B, rank r_1 + ... + r_n, so its update is
  exactly sum_i w_i * scaling_i * B_i A_i.
* ``svd``: that exact update truncated to ``svd_rank`` by SVD (smaller adapter, approximate).

``linear`` (and ``ties``/``dare_*`` inside add_weighted_adapter) average the A matrices and the
B matrices separately: (sum w_i B_i)(sum w_i A_i) has cross terms B_i A_j that no input ever
learned (and an open PEFT bug for negative weights), so it is refused here.

Heads saved through ``modules_to_save`` cannot be combined by PEFT (it refuses two adapters
that both save the head); a merge keeps every task's head instead (``multitask``), so adapters
are loaded here without their saved head.

Folded LoRA fine-tunes merged by task arithmetic (``hf-edge merge``) give the same weights as
``cat`` with the same weights: the folded task vector of input i is exactly scaling_i B_i A_i.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

COMBINATIONS = ("cat", "svd")
ADAPTER_DIR = "adapter"  # inside a LoRA bundle: adapter_config.json + adapter_model.safetensors


def save_adapter(model: nn.Module, out: str | Path) -> Path | None:
    """Save a ``PeftModel``'s adapter (config + weights, PEFT's layout) under ``out/adapter``;
    None (nothing written) for a model without LoRA."""
    try:
        from peft import PeftModel, get_peft_model_state_dict
    except ImportError:  # pragma: no cover - peft is a training dependency
        return None
    if not isinstance(model, PeftModel):
        return None
    from safetensors.torch import save

    from hackforge_edge.bundle import atomic_write_bytes

    d = Path(out) / ADAPTER_DIR
    d.mkdir(parents=True, exist_ok=True)
    name = model.active_adapter
    model.peft_config[name].save_pretrained(str(d))  # writes adapter_config.json only
    state = {k: v.detach().cpu().contiguous().clone()
             for k, v in get_peft_model_state_dict(model, adapter_name=name).items()}
    atomic_write_bytes(d / "adapter_model.safetensors", save(state))
    return d


def load_adapters(base: nn.Module, adapter_dirs: Sequence[str | Path], names: Sequence[str]) -> nn.Module:
    """A PeftModel over ``base`` holding every adapter in ``adapter_dirs`` under ``names``,
    without the heads they saved (``modules_to_save``)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    peft_model = None
    for d, name in zip(adapter_dirs, names):
        d = Path(d)
        if not (d / "adapter_config.json").is_file():
            raise ModelError(f"{d}: no LoRA adapter (adapter_config.json)")
        cfg = LoraConfig.from_pretrained(str(d))
        saved = set(cfg.modules_to_save or [])
        cfg.modules_to_save = None
        state = {k: v for k, v in load_file(str(d / "adapter_model.safetensors")).items()
                 if not any(f".{m}." in k or k.startswith(f"{m}.") for m in saved)
                 and "modules_to_save" not in k}
        if peft_model is None:
            peft_model = get_peft_model(base, cfg, adapter_name=name)
        else:
            peft_model.add_adapter(name, cfg)
        set_peft_model_state_dict(peft_model, state, adapter_name=name)
    return peft_model


def combine_adapters(peft_model: nn.Module, adapters: Sequence[str], weights: Sequence[float], *,
                     combination: str = "cat", svd_rank: int | None = None,
                     name: str = "combined") -> dict[str, Any]:
    """Add adapter ``name`` = the weighted combination of ``adapters`` and make it active.

    Returns what was done (for a manifest). Refuses ``linear`` and every other combination
    that averages A and B separately, a repeated adapter, and an existing ``name`` (PEFT would
    return silently without combining anything).
    """
    from importlib import metadata

    if combination not in COMBINATIONS:
        raise UsageError(f"LoRA combination {combination!r} is not offered: use cat (exact) or svd "
                         "(truncated); linear/ties/dare combine A and B separately (cross terms)")
    if len(adapters) < 2:
        raise UsageError(f"combining needs at least two adapters, got {len(adapters)}")
    if len(set(adapters)) != len(adapters):
        raise UsageError(f"an adapter is listed twice: {list(adapters)}")
    if len(weights) != len(adapters):
        raise UsageError(f"{len(weights)} weight(s) for {len(adapters)} adapters")
    missing = [a for a in adapters if a not in peft_model.peft_config]
    if missing:
        raise UsageError(f"no adapter named {missing[0]!r} (have {sorted(peft_model.peft_config)})")
    if name in peft_model.peft_config:
        raise UsageError(f"an adapter named {name!r} exists already")
    if combination == "svd" and svd_rank is not None and svd_rank < 1:
        raise UsageError(f"svd rank must be >= 1, got {svd_rank}")
    peft_model.add_weighted_adapter(list(adapters), [float(w) for w in weights], adapter_name=name,
                                    combination_type=combination, svd_rank=svd_rank)
    if name not in peft_model.peft_config:  # pragma: no cover - PEFT returned without combining
        raise ModelError(f"PEFT did not create adapter {name!r}")
    peft_model.set_adapter(name)
    return {"combination": combination, "adapters": list(adapters), "weights": [float(w) for w in weights],
            "rank": int(peft_model.peft_config[name].r), "svd_rank": svd_rank,
            "library": "peft", "function": "LoraModel.add_weighted_adapter",
            "peft_version": metadata.version("peft")}
