"""``hf-edge train-and-export``: the whole pipeline on one model, strategy and dataset."""

from __future__ import annotations

from typing import Optional

import typer

from hackforge_edge.recipes.train_and_export import DEFAULT_PROFILES, TrainExportConfig
from hackforge_edge.training.defaults import DEFAULTS, TEXT_DEFAULTS

_D = {name: f.default for name, f in TrainExportConfig.__dataclass_fields__.items()}


def _both(field: str) -> str:
    """"default: X (images), Y (text)" for options whose default depends on the task."""
    return f"Default: {getattr(DEFAULTS, field)} (image), {getattr(TEXT_DEFAULTS, field)} (text)."


def train_and_export(
    model: Optional[str] = typer.Option(None, help="Model from the registry: resnet18, resnet50, "
                              "efficientnet_b0, mobilenet_v2, mobilenet_v3_small (tinycnn for tests); "
                              "text: minilm-l6, distilbert, bert-base (tinybert for tests), a "
                              "transformers model directory or hub id. " + _both("model")),
    task: Optional[str] = typer.Option(None, help="image | text | tabular (default: inferred from "
                                       "--model; tabular: linear/logistic transfer on a table)."),
    strategy: Optional[str] = typer.Option(None, help="Transfer strategy: scratch, frozen, finetune, "
                                           "lora, progressive, ewc, l2sp. " + _both("strategy") +
                                           " Tabular: scratch, regularized, bayesian (default), "
                                           "covariance, statmap."),
    target_column: Optional[str] = typer.Option(None, help="Tabular: the label/value column of the CSVs."),
    problem: Optional[str] = typer.Option(None, help="Tabular: classification | regression "
                                          "(inferred when unambiguous)."),
    cv_folds: Optional[int] = typer.Option(None, help="Tabular: folds choosing lambda/tau/blend on the "
                                           "target training split (default min(5, rarest class))."),
    data: Optional[str] = typer.Option(None, help="ImageFolder root (root/<class>/*.png|jpg), or for "
                                       "text a .csv/.jsonl file; default: the toolkit's synthetic "
                                       "target domain (tissue tiles, or GP referral letters). Tabular: "
                                       "a target CSV or sklearn:breast_cancer (default), "
                                       "sklearn:diabetes, sklearn:wine."),
    image_size: int = typer.Option(_D["image_size"], help="Square input size in pixels."),
    max_length: int = typer.Option(_D["max_length"], help="Text: maximum tokens per text "
                                   "(truncation, export, serving, profiling)."),
    text_column: str = typer.Option(_D["text_column"], help="Text files: the text column."),
    label_column: str = typer.Option(_D["label_column"], help="Text files: the label column."),
    group_column: Optional[str] = typer.Option(None, help="Text files: a group column (e.g. patient "
                                               "id) kept within one split."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs on the target domain. " + _both("epochs")),
    data_fraction: float = typer.Option(_D["data_fraction"], help="Share of the target training set "
                                        "to use, stratified, in (0, 1]: e.g. 1.0, 0.5, 0.25, 0.1."),
    seed: int = typer.Option(_D["seed"], help="Seed for data, init, training order."),
    weights: Optional[str] = typer.Option(None, help="Starting weights: none | imagenet (torchvision "
                                "download) | source (the toolkit's synthetic-source model, cached) | "
                                "PATH to a state_dict; text: pretrained | none. " + _both("weights")),
    out: Optional[str] = typer.Option(None, help="Bundle directory (default runs/<model>-<strategy>-<time>)."),
    overwrite: bool = typer.Option(False, help="Replace an existing non-empty --out."),
    device: str = typer.Option(_D["device"], help="auto | cpu | cuda."),
    lr: Optional[float] = typer.Option(None, help="AdamW peak learning rate (cosine-decayed). " + _both("lr")),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size. " + _both("batch_size")),
    lora_rank: int = typer.Option(_D["lora_rank"], help="LoRA rank r."),
    lora_alpha: float = typer.Option(_D["lora_alpha"], help="LoRA alpha (update scaled by alpha/r)."),
    group_pattern: Optional[str] = typer.Option(None, help="Regex on file names whose match (or first "
                                                "group) keeps a group, e.g. a patient id, in one split."),
    unfreeze_every: int = typer.Option(_D["unfreeze_every"], help="progressive: epochs between "
                                       "unfreezing one more layer group (from the head down)."),
    lr_decay: float = typer.Option(_D["lr_decay"], help="progressive: group l of L trains at "
                                   "lr / lr_decay^(L-l) (ULMFiT: 2.6)."),
    slanted_triangular: bool = typer.Option(False, help="progressive: slanted triangular LR "
                                            "schedule (10 % warm-up, linear decay) instead of cosine."),
    ewc_lambda: float = typer.Option(_D["ewc_lambda"], help="ewc: penalty lambda/2 * sum F (theta - theta*)^2."),
    ewc_gamma: float = typer.Option(_D["ewc_gamma"], help="ewc: online-EWC decay of earlier tasks' "
                                    "Fisher in [0, 1] (a chain of tasks)."),
    l2sp_alpha: float = typer.Option(_D["l2sp_alpha"], help="l2sp: alpha/2 ||w - w_source||^2 on the backbone."),
    l2sp_beta: float = typer.Option(_D["l2sp_beta"], help="l2sp: beta/2 ||w_head||^2 on the new head."),
    source_data: Optional[str] = typer.Option(None, help="ImageFolder the --weights PATH model was "
                                              "trained on: EWC's Fisher and the forgetting measure. "
                                              "Tabular: the source population's CSV."),
    variants: str = typer.Option("", help="Comma-separated extra exports judged on target data: fp16,int8."),
    profile: list[str] = typer.Option(list(DEFAULT_PROFILES), "--profile",
                                      help="Hardware profile name or YAML (repeatable)."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Skip profiling, feasibility and report."),
    requirements: Optional[str] = typer.Option(None, help="Requirements YAML (flags override it)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Latency limit (ms) at --percentile."),
    percentile: Optional[str] = typer.Option(None, help="p50, p95 or p99 (default p99)."),
    min_throughput: Optional[float] = typer.Option(None, help="Items/s one device must sustain."),
    power_budget_w: Optional[float] = typer.Option(None, help="Device power budget (W)."),
    items_per_day: Optional[float] = typer.Option(None, help="Workload: inferences per day."),
    hours_per_day: Optional[float] = typer.Option(None, help="Workload: operating hours per day."),
    region: Optional[str] = typer.Option(None, help="Grid region for CO2 (ISO alpha-3, EU27, WORLD)."),
    grid_intensity: Optional[float] = typer.Option(None, help="Grid intensity override (g CO2e/kWh)."),
    pue: Optional[float] = typer.Option(None, help="Power usage effectiveness (>= 1)."),
    tdp_w: Optional[float] = typer.Option(None, help="CPU TDP (W) for the energy estimate where no "
                                          "counter exists (default: from the local profile)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    gate: str = typer.Option(_D["gate"], help="Negative-transfer gate before training: off | warn "
                             "(say so, go on) | stop (refuse a start predicted to hurt: exit 3)."),
) -> None:
    """Adapt a pretrained model to the target domain, export ONNX, validate, profile, report.

    With no arguments: the embedded default (synthetic histopathology-like data, no download).
    """
    from hackforge_edge.cli._console import make_console
    from hackforge_edge.recipes import train_and_export as pipeline

    req = {"max_latency_ms": max_latency_ms, "percentile": percentile,
           "min_throughput_per_s": min_throughput, "power_budget_w": power_budget_w,
           "items_per_day": items_per_day, "operating_hours_per_day": hours_per_day}
    console = make_console(highlight=False)
    if task == "tabular":
        from hackforge_edge.recipes import train_tabular

        tcfg = train_tabular.TabularConfig(
            data=data or train_tabular.DEFAULT_DATA, source_data=source_data, target_column=target_column,
            problem=problem, strategy=strategy or "bayesian", data_fraction=data_fraction, seed=seed,
            cv_folds=cv_folds, profiles=tuple(profile), skip_profile=no_profile,
            requirements={k: v for k, v in req.items() if v is not None}, requirements_file=requirements,
            region=region, grid_intensity=grid_intensity, pue=pue, tdp_w=tdp_w, out=out, overwrite=overwrite)
        _print_verdicts(console, train_tabular.run(tcfg, say=console.print))
        return
    cfg = TrainExportConfig(
        model=model, strategy=strategy, data=data, image_size=image_size, epochs=epochs,
        data_fraction=data_fraction, seed=seed, weights=weights, device=device, lr=lr,
        batch_size=batch_size, lora_rank=lora_rank, lora_alpha=lora_alpha,
        group_pattern=group_pattern, unfreeze_every=unfreeze_every, lr_decay=lr_decay,
        slanted_triangular=slanted_triangular, ewc_lambda=ewc_lambda, ewc_gamma=ewc_gamma,
        l2sp_alpha=l2sp_alpha, l2sp_beta=l2sp_beta, source_data=source_data,
        variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        profiles=tuple(profile), skip_profile=no_profile, region=region,
        grid_intensity=grid_intensity, pue=pue,
        requirements={k: v for k, v in req.items() if v is not None},
        requirements_file=requirements, tdp_w=tdp_w, out=out, overwrite=overwrite,
        progress=not quiet, task=task, max_length=max_length, text_column=text_column,
        label_column=label_column, group_column=group_column, gate=gate,
    )
    _print_verdicts(console, pipeline.run(cfg, say=console.print))


def _print_verdicts(console, out_dir) -> None:
    feasibility = out_dir / "feasibility.json"
    if feasibility.is_file():
        from hackforge_edge.cli.profile_cmd import verdict_table
        from hackforge_edge.feasibility.artifact import Feasibility

        console.print(verdict_table(Feasibility.read(feasibility)))
