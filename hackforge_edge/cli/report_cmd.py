"""``hf-edge report BUNDLE [--compare OTHER ...]``: regenerate report.{json,md,html} + figures/."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def report(
    bundle_dir: Path = typer.Argument(..., help="A run bundle that holds profile.json (run `hf-edge profile` first)."),
    compare: Optional[List[Path]] = typer.Option(
        None, "--compare", help="Other bundle(s) to compare strategies with (repeatable)."),
    requirements_file: Optional[Path] = typer.Option(
        None, "--requirements", "-r",
        help="Re-judge against this requirements YAML (default: keep the bundle's feasibility.json)."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Report on a bundle that is incomplete or no longer matches its "
                                          "manifest, with a warning (default: refuse it)."),
) -> None:
    """Rebuild the feasibility report from what the bundle holds (no re-measurement)."""
    from hackforge_edge.errors import HFEdgeError

    try:
        paths = _rebuild(bundle_dir, compare, requirements_file, allow_incomplete)
    except HFEdgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    for name in ("json", "md", "html"):
        typer.echo(f"wrote {paths[name]}")
    figs = sorted(str(p) for k, p in paths.items() if k.startswith("figure_"))
    if figs:
        typer.echo(f"figures: {', '.join(figs)}")


def _rebuild(bundle_dir: Path, compare: list[Path] | None, requirements_file: Path | None,
             allow_incomplete: bool) -> dict:
    """profile.json -> (feasibility.json, judged again when asked or missing) -> report."""
    from hackforge_edge.bundle import Bundle
    from hackforge_edge.report.build import build_report
    from hackforge_edge.report.inputs import read_report_inputs

    # verified before any work; what this command rewrites need not match (it is replaced)
    rewrites = ["report.*", "figures/*"] + (["feasibility.json"] if requirements_file else [])
    opened = Bundle.open(bundle_dir, allow_incomplete=allow_incomplete, rewrites=rewrites)
    inputs = read_report_inputs(bundle_dir)
    feasibility = inputs.feasibility
    rewritten = []
    if feasibility is None or requirements_file is not None:
        # no verdict yet (or new requirements): judge the stored profile again, purely
        from hackforge_edge.energy.carbon import resolve_grid
        from hackforge_edge.feasibility.requirements import load_requirements
        from hackforge_edge.feasibility.verdict import evaluate

        req = load_requirements(requirements_file)
        grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
        feasibility = evaluate(inputs.profile, req, grid)
        rewritten.append(feasibility.write(bundle_dir))   # the report below reads this verdict
    rows = None
    if compare:
        from hackforge_edge.energy.compare import compare_bundles
        rows = compare_bundles([bundle_dir, *compare], allow_incomplete=allow_incomplete)
    paths = build_report(bundle_dir, inputs=inputs, feasibility=feasibility, comparison_rows=rows,
                         say=lambda m: typer.echo(m, err=True))
    opened.refresh_manifest(command="hf-edge report", rewritten=[*rewritten, *paths.values()])
    return paths
