"""``hf-edge merge BUNDLE_A BUNDLE_B ...``: fine-tunes of one base merged in weight space, then
exported, validated, profiled and reported like any other model."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def merge(
    bundles: List[Path] = typer.Argument(..., help="Input bundles: fine-tunes of one base (two or more)."),
    method: str = typer.Option("task_arithmetic", help="task_arithmetic | ties | dare_linear | dare_ties "
                               "| magnitude_prune | slerp | linear."),
    weights: Optional[str] = typer.Option(None, help="Comma-separated weight per input (default: the "
                                          "method's: 1/n, or 1 for ties/dare_ties; slerp: t = w2/(w1+w2))."),
    density: float = typer.Option(0.5, help="Fraction of each task vector kept, in (0, 1] "
                                  "(ties, dare_*, magnitude_prune)."),
    lam: float = typer.Option(1.0, "--lambda", help="Scale of the merged task vector (not linear/slerp)."),
    seed: int = typer.Option(0, help="Seed of DARE's random masks."),
    base: Optional[str] = typer.Option(None, help="Base state_dict (.pt/.pth/.safetensors); default: "
                                       "rebuilt from the inputs' manifests (the cached source model)."),
    no_update_bn: bool = typer.Option(False, "--no-update-bn", help="Keep the merged BatchNorm "
                                      "statistics instead of re-estimating them on the tasks' images."),
    bn_images: int = typer.Option(256, help="Training images per task for the BatchNorm update."),
    out: Optional[str] = typer.Option(None, help="Merged bundle directory (default runs/merge-<method>-<time>)."),
    overwrite: bool = typer.Option(False, help="Replace an existing non-empty --out."),
    device: str = typer.Option("cpu", help="cpu | cuda (merge, BatchNorm update, evaluation)."),
    variants: str = typer.Option("", help="Comma-separated extra exports judged on target data: fp16,int8."),
    profile: Optional[List[str]] = typer.Option(None, "--profile", help="Hardware profile (repeatable)."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Skip profiling, feasibility and report."),
    requirements: Optional[str] = typer.Option(None, help="Requirements YAML."),
    region: Optional[str] = typer.Option(None, help="Grid region for CO2 (ISO alpha-3, EU27, WORLD)."),
) -> None:
    """Merge fine-tunes of one base (task arithmetic, TIES, DARE, SLERP, linear) into one model
    with one output per task, then export, validate, profile and report it."""
    from hackforge_edge.cli._console import make_console
    from hackforge_edge.merging.methods import parse_weights
    from hackforge_edge.recipes import merge as recipe
    from hackforge_edge.recipes.profile import DEFAULT_PROFILES

    cfg = recipe.MergeConfig(
        inputs=tuple(str(b) for b in bundles), method=method, weights=parse_weights(weights),
        density=density, lam=lam, seed=seed, base=base, update_bn=not no_update_bn,
        bn_images_per_task=bn_images, device=device,
        variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        profiles=tuple(profile or DEFAULT_PROFILES), skip_profile=no_profile, region=region,
        requirements_file=requirements, out=out, overwrite=overwrite)
    console = make_console(highlight=False)
    recipe.run(cfg, say=console.print)
