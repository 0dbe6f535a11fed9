"""Transfer-learning strategies: which parameters train, and how many there are.

A strategy takes a model built by :func:`hackforge_edge.models.create_model` and decides what
trains: ``scratch`` (re-initialise, train all), ``frozen`` (head only), ``finetune`` (all),
``lora`` (PEFT LoRA adapters in the backbone's conv/linear layers + a trainable head).

BatchNorm running statistics follow the target data under every strategy: they are buffers,
not trained parameters, and re-estimating them on the target domain is a cheap, well-known
domain adaptation (AdaBN, Li et al. 2016) that a frozen backbone would otherwise miss.

Strategies that need the training loop's help register a ``make_hooks`` factory too:
``progressive`` (progressive unfreezing + discriminative learning rates), ``ewc`` (elastic
weight consolidation) and ``l2sp`` (L2 toward the starting point), each in its own module;
:func:`build_hooks` makes them and :func:`hackforge_edge.training.train` takes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from hackforge_edge.errors import ModelError, UsageError
from hackforge_edge.models.registry import create_model, head_module_name
from hackforge_edge.training.defaults import STRATEGY_DEFAULTS

if TYPE_CHECKING:
    from torch import nn

BYTES_PER_FP32 = 4
MB = 1e6  # sizes are decimal megabytes (10^6 bytes)


@dataclass(frozen=True)
class StrategyOptions:
    """Options every strategy receives; ``lora_*`` only matter to lora."""

    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    seed: int = 0  # seeds scratch's re-initialisation
    # progressive: one more layer group unfreezes every `unfreeze_every` epochs; group l of L
    # trains at lr / lr_decay ** (L - l); slanted_triangular swaps the cosine decay for STLR
    unfreeze_every: int = STRATEGY_DEFAULTS.unfreeze_every
    lr_decay: float = STRATEGY_DEFAULTS.lr_decay
    slanted_triangular: bool = STRATEGY_DEFAULTS.slanted_triangular
    # ewc: lambda / 2 * sum F (theta - theta*)^2; gamma decays earlier tasks' Fisher (online)
    ewc_lambda: float = STRATEGY_DEFAULTS.ewc_lambda
    ewc_gamma: float = STRATEGY_DEFAULTS.ewc_gamma
    # l2sp: alpha / 2 * ||w_S - w_S^0||^2 + beta / 2 * ||w_head||^2
    l2sp_alpha: float = STRATEGY_DEFAULTS.l2sp_alpha
    l2sp_beta: float = STRATEGY_DEFAULTS.l2sp_beta

    def __post_init__(self):
        from hackforge_edge.strategies.options_check import check_transfer_options

        check_transfer_options(self)
        if int(self.lora_rank) < 1:
            raise UsageError(f"--lora-rank must be a positive integer, got {self.lora_rank}")
        if float(self.lora_alpha) <= 0:
            raise UsageError(f"--lora-alpha must be positive, got {self.lora_alpha}")
        if not 0.0 <= float(self.lora_dropout) < 1.0:
            raise UsageError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")


@dataclass(frozen=True)
class ParamReport:
    """Parameter accounting of a model as it will train. Counts are numbers of scalars.

    ``total_params`` counts every parameter held while training (adapters included, and PEFT's
    frozen copy of the original head under lora); ``deployed_params`` counts the exported model
    after adapters are folded in. Sizes are fp32 megabytes (10^6 bytes).
    """

    strategy: str
    total_params: int
    trainable_params: int
    frozen_params: int
    adapter_params: int
    head_params: int
    deployed_params: int
    trainable_percent: float
    total_fp32_mb: float
    trainable_fp32_mb: float
    deployed_fp32_mb: float
    lora: dict[str, Any] | None = None  # rank, alpha, dropout, targeted/skipped module counts

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: ``apply(model, options) -> model`` sets requires_grad (and may wrap)."""

    name: str
    description: str
    apply: Callable[["nn.Module", StrategyOptions], "nn.Module"]
    # (model, options, source_task | None, device) -> training-loop hooks (see
    # hackforge_edge.training.loop.TrainHook); most strategies need none
    make_hooks: Callable[..., list] = field(default=lambda model, opts, source, device: [])


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, description: str, make_hooks: Callable[..., list] | None = None):
    def deco(fn):
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} registered twice")
        STRATEGIES[name] = (Strategy(name, description, fn, make_hooks) if make_hooks is not None
                            else Strategy(name, description, fn))
        return fn
    return deco


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UsageError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None


def _set_trainable(model: "nn.Module", head_only: bool) -> None:
    prefix = head_module_name(model) + "."
    for n, p in model.named_parameters():
        p.requires_grad_(not head_only or n.startswith(prefix))


@register_strategy("scratch", "random initialisation, every parameter trains")
def _scratch(model: "nn.Module", opts: StrategyOptions) -> "nn.Module":
    meta = model.hf_edge_meta
    # Re-initialise with the architecture's own init (torchvision's Kaiming etc.), whatever
    # weights the model was built with: "scratch" must mean no transfer at all.
    if meta.get("task") == "text":  # transformers: random init from the model's own config
        from hackforge_edge.models.text import reinitialise
        reinitialise(model, seed=opts.seed)
    else:
        fresh = create_model(meta["name"], meta["num_classes"], "none", seed=opts.seed)
        model.load_state_dict(fresh.state_dict())
    meta["weights"] = {"kind": "none", "reinitialised_by": "scratch", "was": meta.get("weights")}
    _set_trainable(model, head_only=False)
    return model


@register_strategy("frozen", "backbone frozen, only the classifier head trains")
def _frozen(model: "nn.Module", opts: StrategyOptions) -> "nn.Module":
    _set_trainable(model, head_only=True)
    return model


@register_strategy("finetune", "every parameter trains from the pretrained weights")
def _finetune(model: "nn.Module", opts: StrategyOptions) -> "nn.Module":
    _set_trainable(model, head_only=False)
    return model


def lora_targets(model: "nn.Module") -> tuple[list[str], list[str]]:
    """(targeted, skipped) module names for LoRA: backbone Conv2d/Linear layers.

    Grouped/depthwise convolutions are skipped: PEFT cannot merge LoRA into a conv with
    groups > 1, and the adapters must fold into plain weights before ONNX export.
    """
    from torch import nn

    head = head_module_name(model)
    # text models name their architecture's defaults (q_lin/v_lin for DistilBERT, query/value for BERT)
    wanted = set(model.hf_edge_meta.get("lora_targets") or ())
    targeted, skipped = [], []
    for n, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or n == head or n.startswith(head + "."):
            continue
        if wanted and n.rsplit(".", 1)[-1] not in wanted:
            continue
        (skipped if getattr(m, "groups", 1) > 1 else targeted).append(n)
    return targeted, skipped


@register_strategy("lora", "PEFT LoRA adapters in backbone conv/linear layers + trainable head")
def _lora(model: "nn.Module", opts: StrategyOptions) -> "nn.Module":
    import re

    from peft import LoraConfig, get_peft_model

    targeted, skipped = lora_targets(model)
    if not targeted:
        raise ModelError(f"{model.hf_edge_meta['name']}: no conv/linear layer for LoRA to adapt")
    head = head_module_name(model)
    # A regex string is matched with re.fullmatch against full module names; a list would
    # match by suffix and could catch a module whose name merely ends like a target.
    pattern = "|".join(re.escape(n) for n in targeted)
    config = LoraConfig(r=int(opts.lora_rank), lora_alpha=float(opts.lora_alpha),
                        lora_dropout=float(opts.lora_dropout), target_modules=pattern,
                        modules_to_save=[head], bias="none")
    # get_peft_model (not inject_adapter_in_model) so exporters can call merge_and_unload().
    peft_model = get_peft_model(model, config)
    model.hf_edge_meta["lora"] = {"rank": int(opts.lora_rank), "alpha": float(opts.lora_alpha),
                                  "dropout": float(opts.lora_dropout),
                                  "targeted_modules": len(targeted),
                                  "skipped_grouped_convs": len(skipped)}
    return peft_model


def count_params(model: "nn.Module") -> int:
    return sum(p.numel() for p in model.parameters())


def param_report(model: "nn.Module", strategy: str, deployed_params: int) -> ParamReport:
    """Count parameters of ``model`` as it will train (see ParamReport)."""
    total = trainable = adapter = head = 0
    head_name = head_module_name(model)
    for n, p in model.named_parameters():
        k = p.numel()
        total += k
        if p.requires_grad:
            trainable += k
            if "lora_" in n:
                adapter += k
            elif n.startswith(head_name + ".") or f".{head_name}." in n:  # PEFT prefixes names
                head += k
    return ParamReport(
        strategy=strategy, total_params=total, trainable_params=trainable,
        frozen_params=total - trainable, adapter_params=adapter, head_params=head,
        deployed_params=deployed_params,
        trainable_percent=round(100.0 * trainable / total, 4) if total else 0.0,
        total_fp32_mb=round(total * BYTES_PER_FP32 / MB, 4),
        trainable_fp32_mb=round(trainable * BYTES_PER_FP32 / MB, 4),
        deployed_fp32_mb=round(deployed_params * BYTES_PER_FP32 / MB, 4),
        lora=model.hf_edge_meta.get("lora"),
    )


def apply_strategy(model: "nn.Module", name: str, *, lora_rank: int = 8, lora_alpha: float = 16.0,
                   lora_dropout: float = 0.0, seed: int = 0,
                   options: StrategyOptions | None = None) -> tuple["nn.Module", ParamReport]:
    """Prepare ``model`` (built by create_model) for strategy ``name``.

    Returns the model to train (under lora a ``peft.PeftModel`` wrapping it: call
    ``merge_and_unload()`` to fold the adapters) and its :class:`ParamReport`.
    ``lora_rank``/``lora_alpha``/``lora_dropout``: LoRA rank r, scaling alpha (the update is
    scaled by alpha / r) and dropout probability. ``seed`` seeds scratch's re-initialisation.
    ``options``: a full StrategyOptions (progressive/ewc/l2sp settings); replaces the others.
    """
    strategy = get_strategy(name)
    opts = options or StrategyOptions(lora_rank=lora_rank, lora_alpha=lora_alpha,
                                      lora_dropout=lora_dropout, seed=seed)
    head_module_name(model)  # fail early on a model without hf_edge_meta
    deployed = count_params(model)
    out = strategy.apply(model, opts)
    out.hf_edge_meta["strategy"] = name
    return out, param_report(out, name, deployed)


def build_hooks(model: "nn.Module", name: str, options: StrategyOptions | None = None, *,
                source: Any = None, device: str = "auto") -> list:
    """Training-loop hooks of strategy ``name`` for ``model`` (after apply_strategy).

    ``source``: the :class:`hackforge_edge.strategies.source_task.SourceTask` (ewc needs it for
    its Fisher; l2sp anchors to the model's starting weights either way).
    """
    return list(get_strategy(name).make_hooks(model, options or StrategyOptions(), source, device))


# strategies in their own modules: each names itself, the registry registers it (one direction)
from hackforge_edge.strategies import ewc, l2sp, progressive  # noqa: E402

for _mod in (progressive, ewc, l2sp):
    register_strategy(_mod.NAME, _mod.DESCRIPTION, make_hooks=_mod._hooks)(_mod._apply)
