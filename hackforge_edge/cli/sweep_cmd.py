"""``hf-edge sweep``: models x strategies x data fractions x seeds, resumable, local or on Ray."""

from __future__ import annotations

from typing import Optional

import typer


def sweep(
    spec: Optional[str] = typer.Option(None, help="Sweep spec YAML (fields as the flags below); "
                                       "flags given on the command line override it."),
    models: Optional[str] = typer.Option(None, help="Comma-separated models, e.g. resnet18,mobilenet_v2."),
    strategies: Optional[str] = typer.Option(None, help="Comma-separated strategies: scratch,frozen,finetune,lora."),
    fractions: Optional[str] = typer.Option(None, help="Training-set shares in (0, 1] "
                                            "[default: 1,0.5,0.25,0.1]."),
    seeds: Optional[str] = typer.Option(None, help="Seeds [default: 0,1,2]."),
    weights: Optional[str] = typer.Option(None, help="Start(s), comma-separated: none | imagenet | "
                                          "source | PATH [default: source]; several = a grid axis."),
    data: Optional[str] = typer.Option(None, help="ImageFolder root; default the synthetic target domain."),
    image_size: Optional[int] = typer.Option(None, help="Square input size in pixels [default: 64]."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs per cell [default: 5]."),
    lr: Optional[float] = typer.Option(None, help="AdamW peak learning rate [default: 1e-3]."),
    batch_size: Optional[int] = typer.Option(None, help="Training batch size [default: 32]."),
    lora_rank: Optional[int] = typer.Option(None, help="LoRA rank r [default: 8]."),
    lora_alpha: Optional[float] = typer.Option(None, help="LoRA alpha [default: 16]."),
    group_pattern: Optional[str] = typer.Option(None, help="Regex keeping a group (patient) in one split."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda [default: auto]."),
    region: Optional[str] = typer.Option(None, help="Grid region for CO2 (ISO alpha-3, EU27, WORLD)."),
    grid_intensity: Optional[float] = typer.Option(None, help="Grid intensity override (g CO2e/kWh)."),
    pue: Optional[float] = typer.Option(None, help="Power usage effectiveness (>= 1)."),
    tdp_w: Optional[float] = typer.Option(None, help="CPU TDP (W) for the energy estimate."),
    export: Optional[str] = typer.Option(None, help="none | best | all [default: none]: bundles "
                                         "through train-and-export (a re-run of the chosen cells)."),
    variants: Optional[str] = typer.Option(None, help="With --export: fp16,int8 variants."),
    out: Optional[str] = typer.Option(None, help="Sweep directory [default: sweeps/<name or hash>]."),
    jobs: int = typer.Option(1, help="Local worker processes (each gets cores // jobs threads)."),
    threads: Optional[int] = typer.Option(None, help="Torch threads per cell [default: cores // jobs]."),
    executor: str = typer.Option("local", help="local | ray."),
    ray_address: Optional[str] = typer.Option(None, help="With --executor ray: auto | ray://HOST:PORT "
                                              "[default: start a local Ray instance]."),
    retry_failed: bool = typer.Option(False, help="Run failed cells again."),
    force: bool = typer.Option(False, help="Use --out even if it holds a different spec."),
    quiet: bool = typer.Option(False, help="No progress bar (the per-cell lines stay)."),
    summary_only: bool = typer.Option(False, help="Only rebuild results.csv and the summary from "
                                      "the cells finished so far (e.g. while or after a sweep runs)."),
) -> None:
    """Run every cell (one metered training run each) not finished yet; summarise with 95 %
    intervals over seeds and paired comparisons with scratch. Re-run the same command to resume."""
    from hackforge_edge.cli._console import make_console
    from hackforge_edge.recipes.sweep import run_sweep
    from hackforge_edge.sweep.executors import RunOptions
    from hackforge_edge.sweep.spec import SweepSpec, parse_list

    fields = dict(
        models=parse_list(models, str, "--models"), strategies=parse_list(strategies, str, "--strategies"),
        fractions=parse_list(fractions, float, "--fractions"), seeds=parse_list(seeds, int, "--seeds"),
        weights=parse_list(weights, str, "--weights"), data=data, image_size=image_size, epochs=epochs,
        lr=lr, batch_size=batch_size, lora_rank=lora_rank, lora_alpha=lora_alpha,
        group_pattern=group_pattern, device=device, region=region, grid_intensity=grid_intensity,
        pue=pue, tdp_w=tdp_w, export=export, variants=parse_list(variants, str, "--variants"), out=out)
    sweep_spec = SweepSpec.from_yaml(spec, **fields) if spec else SweepSpec.build(**fields)
    opts = RunOptions(jobs=jobs, threads=threads, executor=executor, ray_address=ray_address,
                      retry_failed=retry_failed, force=force)
    console = make_console(highlight=False)
    if summary_only:
        from hackforge_edge.recipes.sweep import summarise_only

        c = summarise_only(sweep_spec)["cells"]
        console.print(f"summary of {c['ok']} ok, {c['failed']} failed, {c['not_run']} not run of "
                      f"{c['grid']} cells: {sweep_spec.resolved_out() / 'summary.html'}")
        return
    err = make_console(stderr=True, highlight=False)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), console=err, disable=quiet)
    task = None

    def on_start(todo: int, total: int) -> None:
        nonlocal task
        console.print(f"sweep {sweep_spec.resolved_out()}: {total} cells, {total - todo} already "
                      f"finished, {todo} to run ({opts.executor}, {opts.jobs} job(s) x "
                      f"{opts.threads_per_job()} thread(s))")
        task = bar.add_task("cells", total=todo)

    def on_cell(rec: dict, done: int, todo: int) -> None:
        if rec.get("status") == "ok":
            line = (f"[{done}/{todo}] {rec['cell_id']}: accuracy {rec['accuracy']:.3f}, "
                    f"{rec['trainable_params']:,} trainable, {_g(rec.get('energy_consumed'))} kWh "
                    f"({rec.get('energy_kind')}), {rec['wall_s']:.1f} s")
        else:
            line = f"[{done}/{todo}] {rec['cell_id']}: FAILED {rec.get('error')}"
        bar.console.print(line, markup=False) if not quiet else console.print(line, markup=False)
        bar.update(task, advance=1)

    with bar:
        outcome = run_sweep(sweep_spec, opts, on_start=on_start, on_cell=on_cell)
    c = (outcome.summary or {}).get("cells", {})
    console.print(f"done: {c.get('ok', 0)} ok, {c.get('failed', 0)} failed of {c.get('grid', 0)} cells; "
                  f"{outcome.root / 'results.csv'}, {outcome.root / 'summary.html'}")
    if outcome.exports:
        for cid, info in outcome.exports.items():
            console.print(f"bundle {cid}: {outcome.root / info['bundle']}")
    if c.get("failed"):
        raise typer.Exit(1)


def _g(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"
