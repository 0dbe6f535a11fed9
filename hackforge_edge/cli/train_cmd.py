"""``hf-edge train-and-export``: the whole pipeline on one model, strategy and dataset."""

from __future__ import annotations

from typing import Optional

import typer

from hackforge_edge.recipes.train_and_export import DEFAULT_PROFILES, TrainExportConfig

_D = {name: f.default for name, f in TrainExportConfig.__dataclass_fields__.items()}


def train_and_export(
    model: str = typer.Option(_D["model"], help="Model from the registry: resnet18, resnet50, "
                              "efficientnet_b0, mobilenet_v2, mobilenet_v3_small (tinycnn for tests)."),
    strategy: str = typer.Option(_D["strategy"], help="Transfer strategy: scratch, frozen, finetune, lora."),
    data: Optional[str] = typer.Option(None, help="ImageFolder root (root/<class>/*.png|jpg); "
                                       "default: the toolkit's synthetic target domain."),
    image_size: int = typer.Option(_D["image_size"], help="Square input size in pixels."),
    epochs: int = typer.Option(_D["epochs"], help="Training epochs on the target domain."),
    data_fraction: float = typer.Option(_D["data_fraction"], help="Share of the target training set "
                                        "to use, stratified, in (0, 1]: e.g. 1.0, 0.5, 0.25, 0.1."),
    seed: int = typer.Option(_D["seed"], help="Seed for data, init, training order."),
    weights: str = typer.Option(_D["weights"], help="Starting weights: none | imagenet (torchvision "
                                "download) | source (the toolkit's synthetic-source model, cached) | "
                                "PATH to a state_dict."),
    out: Optional[str] = typer.Option(None, help="Bundle directory (default runs/<model>-<strategy>-<time>)."),
    overwrite: bool = typer.Option(False, help="Replace an existing non-empty --out."),
    device: str = typer.Option(_D["device"], help="auto | cpu | cuda."),
    lr: float = typer.Option(_D["lr"], help="AdamW peak learning rate (cosine-decayed)."),
    batch_size: int = typer.Option(_D["batch_size"], help="Training batch size."),
    lora_rank: int = typer.Option(_D["lora_rank"], help="LoRA rank r."),
    lora_alpha: float = typer.Option(_D["lora_alpha"], help="LoRA alpha (update scaled by alpha/r)."),
    group_pattern: Optional[str] = typer.Option(None, help="Regex on file names whose match (or first "
                                                "group) keeps a group, e.g. a patient id, in one split."),
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
    cfg = TrainExportConfig(
        model=model, strategy=strategy, data=data, image_size=image_size, epochs=epochs,
        data_fraction=data_fraction, seed=seed, weights=weights, device=device, lr=lr,
        batch_size=batch_size, lora_rank=lora_rank, lora_alpha=lora_alpha,
        group_pattern=group_pattern,
        variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        profiles=tuple(profile), skip_profile=no_profile, region=region,
        grid_intensity=grid_intensity, pue=pue,
        requirements={k: v for k, v in req.items() if v is not None},
        requirements_file=requirements, tdp_w=tdp_w, out=out, overwrite=overwrite,
        progress=not quiet, gate=gate,
    )
    console = make_console(highlight=False)
    out_dir = pipeline.run(cfg, say=console.print)
    feasibility = out_dir / "feasibility.json"
    if feasibility.is_file():
        from hackforge_edge.bundle import read_json
        from hackforge_edge.cli.profile_cmd import verdict_table

        console.print(verdict_table(read_json(feasibility)))
