"""The train-and-export steps that belong to the transfer strategies: their options, their
training-loop hooks (EWC's Fisher metered as its own phase) and the forgetting measurement.

Kept out of ``train_and_export.py`` so the pipeline gains one call per step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import nn

    from hackforge_edge.strategies.source_task import SourceTask


def strategy_options(cfg: Any):
    """StrategyOptions from a TrainExportConfig (validates every range: one line, UsageError)."""
    from hackforge_edge.strategies.registry import StrategyOptions

    return StrategyOptions(lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha, seed=cfg.seed,
                           unfreeze_every=cfg.unfreeze_every, lr_decay=cfg.lr_decay,
                           slanted_triangular=cfg.slanted_triangular, ewc_lambda=cfg.ewc_lambda,
                           ewc_gamma=cfg.ewc_gamma, l2sp_alpha=cfg.l2sp_alpha, l2sp_beta=cfg.l2sp_beta)


def check_strategy_inputs(cfg: Any) -> None:
    """Every strategy setting and the source-data rule, before any work (raises UsageError)."""
    from hackforge_edge.errors import UsageError
    from hackforge_edge.strategies.source_task import source_task_problem

    strategy_options(cfg)
    problem = source_task_problem(cfg.weights, cfg.source_data, cfg.strategy)
    if problem:
        raise UsageError(problem)


def load_source(cfg: Any) -> "SourceTask | None":
    """The run's source task (None where there is none). Scratch never pretrains one for this."""
    from hackforge_edge.strategies.source_task import load_source_task

    return load_source_task(cfg.model, cfg.weights, image_size=cfg.image_size, seed=cfg.seed,
                            source_data=cfg.source_data, allow_pretrain=cfg.strategy != "scratch",
                            device=cfg.device)


def make_hooks(cfg: Any, model: "nn.Module", source: "SourceTask | None", phases,
               say: Callable[[str], None]) -> list:
    """Training-loop hooks of ``cfg.strategy``; EWC's Fisher is metered as phase ``ewc_fisher``."""
    from hackforge_edge.strategies.registry import build_hooks

    opts = strategy_options(cfg)
    if cfg.strategy != "ewc":
        return build_hooks(model, cfg.strategy, opts, source=source, device=cfg.device)
    with phases.phase("ewc_fisher"):
        hooks = build_hooks(model, cfg.strategy, opts, source=source, device=cfg.device)
    info = hooks[0].info
    say(f"ewc: Fisher of {info.get('n_samples')} source images "
        f"({'cache hit' if info.get('cache_hit') else 'computed'}, per-sample gradients by "
        f"{info.get('per_sample_gradients')}), lambda {opts.ewc_lambda:g}")
    return hooks


def retention(cfg: Any, model: "nn.Module", source: "SourceTask | None", class_names: list[str],
              phases, say: Callable[[str], None]) -> dict[str, Any]:
    """metrics.json's ``source_retention`` block (see source_task.source_retention)."""
    if source is None:
        return {"kind": "not measured", "reason": f"no source data for --weights {cfg.weights} "
                "(use --weights source, or a PATH with --source-data DIR)"}
    from hackforge_edge.strategies.source_task import source_retention

    with phases.phase("source_retention_eval"):
        out = source_retention(model, source, target_class_names=list(class_names), device=cfg.device)
    before, after, head = (out.get(k) for k in ("accuracy_before", "accuracy_after",
                                                "accuracy_after_source_head"))
    say("source test accuracy: before " + _f(before) + ", after " + _f(after)
        + ", after with the source head " + _f(head))
    return out


def hook_summaries(hooks: list) -> list[dict[str, Any]]:
    return [h.summary() for h in hooks if hasattr(h, "summary")]


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"
