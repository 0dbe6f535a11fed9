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
    from hackforge_edge.bundle import Bundle, atomic_write_json
    from hackforge_edge.errors import HFEdgeError

    try:
        from hackforge_edge.report.build import FEASIBILITY_JSON, build_report, load_bundle_parts

        # verified before any work; what this command rewrites need not match (it is replaced)
        rewrites = ["report.*", "figures/*"] + ([FEASIBILITY_JSON] if requirements_file else [])
        opened = Bundle.open(bundle_dir, allow_incomplete=allow_incomplete, rewrites=rewrites)
        rewritten = []
        parts = load_bundle_parts(bundle_dir)
        feasibility = parts["feasibility"]
        if feasibility is None or requirements_file is not None:
            # no verdict yet (or new requirements): judge the stored profile.json again, purely
            from hackforge_edge.energy.carbon import resolve_grid
            from hackforge_edge.feasibility.verdict import evaluate
            from hackforge_edge.feasibility.requirements import load_requirements

            req = load_requirements(requirements_file)
            grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
            feasibility = evaluate(parts["profile"], req, grid)
            rewritten.append(atomic_write_json(bundle_dir / FEASIBILITY_JSON, feasibility))
        rows = None
        if compare:
            from hackforge_edge.energy.compare import compare_bundles
            rows = compare_bundles([bundle_dir, *compare], allow_incomplete=allow_incomplete)
        paths = build_report(bundle_dir, profile=parts["profile"], feasibility=feasibility,
                             comparison_rows=rows)
        opened.refresh_manifest(command="hf-edge report", rewritten=[*rewritten, *paths.values()])
    except HFEdgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    for name in ("json", "md", "html"):
        typer.echo(f"wrote {paths[name]}")
    figs = sorted(str(p) for k, p in paths.items() if k.startswith("figure_"))
    if figs:
        typer.echo(f"figures: {', '.join(figs)}")
