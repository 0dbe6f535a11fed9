"""``hf-edge profile``: will this model fit these targets? profile.json + feasibility.json (+ report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from hackforge_edge.recipes.profile import DEFAULT_PROFILES

if TYPE_CHECKING:  # pragma: no cover
    from hackforge_edge.feasibility.artifact import Feasibility


def profile(
    target: Path = typer.Argument(..., help="A run bundle directory or an .onnx file."),
    profiles: Optional[List[str]] = typer.Option(
        None, "--profile", "-p",
        help="Hardware profile name or YAML path (repeatable). Default: local, nvidia-t4, "
             "jetson-orin-nano-8gb, raspberry-pi-5. List them with `hf-edge profiles list`."),
    requirements_file: Optional[Path] = typer.Option(
        None, "--requirements", "-r", help="Requirements YAML; flags below override its fields."),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms", help="Latency limit per request (ms)."),
    percentile: Optional[str] = typer.Option(None, "--percentile", help="Percentile the latency limit applies to: p50, p95, p99 (default p99)."),
    min_throughput: Optional[float] = typer.Option(None, "--min-throughput", help="Minimum items/s per device."),
    memory_headroom: Optional[float] = typer.Option(None, "--memory-headroom", help="Fraction of device memory to keep free, 0 <= h < 1 (default 0.2)."),
    power_budget_w: Optional[float] = typer.Option(None, "--power-budget-w", help="Maximum device power under load (W)."),
    items_per_day: Optional[float] = typer.Option(None, "--items-per-day", help="Workload: inferences per day."),
    hours_per_day: Optional[float] = typer.Option(None, "--hours-per-day", help="Workload: operating hours per day (default 24)."),
    region: Optional[str] = typer.Option(None, "--region", help="Grid region for CO2 (e.g. FRA, DEU, WORLD)."),
    grid_intensity: Optional[float] = typer.Option(None, "--grid-intensity", help="Grid intensity, g CO2e/kWh (overrides --region's value)."),
    pue: Optional[float] = typer.Option(None, "--pue", help="Power usage effectiveness (>= 1; default 1.0 = device energy only)."),
    tariff_per_kwh: Optional[float] = typer.Option(
        None, "--tariff-per-kwh", help="Electricity price per kWh (requirements currency, default USD)."),
    horizon_years: Optional[float] = typer.Option(
        None, "--horizon-years", help="Years the devices run (cost-of-ownership horizon)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="Comma-separated precisions to project: fp32, fp16, int8 "
                                  "(default: every precision each target's engine runs)."),
    max_accuracy_drop: Optional[float] = typer.Option(
        None, "--max-accuracy-drop", help="Largest top-1 drop vs FP32 (percentage points, target "
                                          "data) a recommended precision may have (default 1)."),
    batch_sizes: str = typer.Option("1,4,8", "--batch-sizes", help="Comma-separated batch sizes to measure and project."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, help="Sequence length for text models."),
    input_shape: Optional[List[str]] = typer.Option(
        None, "--input-shape", help="Input shape NAME=1x3x224x224 when it cannot be inferred (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: the bundle, or next to the model)."),
    report: Optional[bool] = typer.Option(
        None, "--report/--no-report", help="Write report.{json,md,html} + figures (default: yes for a bundle)."),
    runs: Optional[int] = typer.Option(None, "--runs", min=1, help="Timed runs per batch for the local measurement."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Warm-up runs per batch (not timed)."),
    all_modes: bool = typer.Option(
        True, "--all-modes/--default-mode", help="Judge every power mode of each profile, or only its default mode."),
    as_json: bool = typer.Option(False, "--json", help="Print feasibility.json to stdout instead of a table."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Profile a bundle that is incomplete or no longer matches its "
                                          "manifest, with a warning (default: refuse it)."),
) -> None:
    """Profile MODEL_OR_BUNDLE on hardware profiles and judge it against requirements."""
    from hackforge_edge.cli._options import parse_batch_sizes, parse_input_shapes
    from hackforge_edge.errors import HFEdgeError
    from hackforge_edge.feasibility.requirements import load_requirements
    from hackforge_edge.profiling.precision import parse_precisions
    from hackforge_edge.recipes.profile import run_profile

    try:
        req = load_requirements(
            requirements_file, max_latency_ms=max_latency_ms, percentile=percentile,
            min_throughput_per_s=min_throughput, memory_headroom=memory_headroom,
            power_budget_w=power_budget_w, items_per_day=items_per_day,
            operating_hours_per_day=hours_per_day, region=region,
            grid_intensity_g_per_kwh=grid_intensity, pue=pue, max_accuracy_drop_pp=max_accuracy_drop,
            tariff_per_kwh=tariff_per_kwh, horizon_years=horizon_years)
        result = run_profile(target, profiles or list(DEFAULT_PROFILES), req, out=out, report=report,
                             batch_sizes=parse_batch_sizes(batch_sizes), seq_len=seq_len,
                             input_shapes=parse_input_shapes(input_shape), runs=runs, warmup=warmup,
                             all_modes=all_modes, allow_incomplete=allow_incomplete,
                             precisions=parse_precisions(precision))
    except HFEdgeError as exc:
        # one line, non-zero exit (also under CliRunner, which bypasses cli.main)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None

    if as_json:
        from hackforge_edge.bundle import dumps_json
        typer.echo(dumps_json(result.feasibility.to_json()), nl=False)
        return
    from hackforge_edge.cli._console import make_console

    console = make_console()
    console.print(verdict_table(result.feasibility))
    console.print(recommendation_table(result.feasibility))
    console.print(cost_table(result.feasibility))
    for name, path in result.paths.items():
        if not name.startswith("figure_"):
            console.print(f"wrote {path}")


def verdict_table(feasibility: "Feasibility"):
    """A Rich table of the verdicts, one row per (profile, mode, engine, precision)."""
    from rich.table import Table

    from hackforge_edge.report.cells import fmt, fmt_bytes

    colours = {"PASS": "green", "MARGINAL": "yellow", "FAIL": "red"}
    t = Table(title="Feasibility: latency, items/s, memory projected (this-machine: measured); "
                    "energy and CO2 estimated; the verdict judges speed, memory and power, the "
                    "top-1 column accuracy on target data")
    for col in ("target / mode", "precision", "batch", "verdict", "top-1 vs fp32", "latency ms (band)", "items/s",
                "memory req/cap", "J/inf", "devices", "kWh/yr", "kg CO2/yr"):
        t.add_column(col, justify="left" if col in ("target / mode", "precision", "verdict", "latency ms (band)", "memory req/cap")
                     else "right", no_wrap=col in ("verdict", "batch"))
    for e in feasibility.entries:
        lat = e.latency_ms
        band = f" ({fmt(lat.low)}-{fmt(lat.high)})" if lat is not None and lat.low != lat.high else ""
        devices = e.workload.devices_needed if e.workload is not None else None
        t.add_row(
            f"{e.profile} {e.mode}".strip(), e.precision, str(e.batch),
            f"[{colours[e.verdict]}]{e.verdict}[/]", _accuracy_cell(e),
            f"{fmt(lat.value if lat else None)}{band}",
            fmt(e.throughput_per_s),
            f"{fmt_bytes(e.memory_required_bytes)} / {fmt_bytes(e.memory_capacity_bytes)}",
            fmt(e.energy_per_inference_j.value), "-" if devices is None else str(devices),
            fmt(e.energy_per_year_kwh.value) if e.energy_per_year_kwh else "-",
            fmt(e.co2_kg_per_year.value) if e.co2_kg_per_year else "-")
    req = feasibility.requirements.model_dump(exclude_none=True)
    grid = feasibility.grid
    grid_text = f"{grid.region} {grid.intensity_g_per_kwh:g} g/kWh PUE {grid.pue:g}" if grid else "none"
    t.caption = (f"requirements: {', '.join(f'{k}={v}' for k, v in req.items()) or 'none'}; "
                 f"margin {feasibility.config.marginal_margin}; grid {grid_text}; reasons in feasibility.json")
    return t


def _accuracy_cell(entry) -> str:
    """fp32 is the reference; another precision shows its top-1 change on target data, or that
    no variant of it was checked (its verdict then says nothing about accuracy)."""
    if entry.precision == "fp32":
        return "reference"
    acc = entry.accuracy
    if acc is None or acc.drop_pp is None:
        return "[yellow]not checked[/]"
    return f"{-acc.drop_pp:+.2f} pp"


def recommendation_table(feasibility: "Feasibility"):
    """Per target: the recommended (feasible, accuracy kept) mode and precision, or why none."""
    from rich.table import Table

    from hackforge_edge.report.cells import fmt

    limit = feasibility.requirements.max_accuracy_drop_pp
    t = Table(title=f"Best feasible precision per target (accuracy drop <= {limit:g} pp on target data)")
    for col in ("target", "mode", "precision", "batch", "verdict", "items/s", "top-1 kept", "drop pp"):
        t.add_column(col, justify="right" if col in ("batch", "items/s", "top-1 kept", "drop pp") else "left")
    for name, s in feasibility.summary.items():
        r = s.recommended
        if r is None:
            t.add_row(name, "-", "-", "-", "none feasible", "-", "-", "-")
            continue
        t.add_row(name, r.mode, r.precision, str(r.batch), r.verdict, fmt(r.throughput_per_s),
                  "not checked" if r.accuracy is None else f"{100 * r.accuracy:.1f} %",
                  "-" if r.accuracy_drop_pp is None else f"{r.accuracy_drop_pp:.2f}")
    skipped = sorted({e.recommendation_note for e in feasibility.entries
                      if e.verdict != "FAIL" and not e.recommendable})
    t.caption = ("not recommended: " + "; ".join(skipped)) if skipped else ""
    return t


def cost_table(feasibility: "Feasibility"):
    """The ranking by cost per million inferences (or why there is none)."""
    from rich.table import Table

    from hackforge_edge.feasibility.cost import EXCLUDED, cost_needs
    from hackforge_edge.report.cells import fmt

    req = feasibility.requirements
    missing = cost_needs(req)
    if missing:
        return f"cost of ownership: not computed (requirements lack {', '.join(missing)})"
    t = Table(title=f"Ranking by cost per million inferences ({req.currency}, {req.horizon_years:g} years, "
                    f"{req.tariff_per_kwh:g} {req.currency}/kWh; estimated)")
    for col in ("rank", "target", "mode", "precision", "verdict", "devices", "purchase", "energy cost",
                "total", "per million inf.", "kWh/yr", "kg CO2 total", "price basis"):
        t.add_column(col, justify="left" if col in ("target", "mode", "precision", "verdict", "price basis")
                     else "right")
    entries = {(e.profile, e.mode, e.precision): e for e in feasibility.entries}
    for r in feasibility.ranking:
        c = entries[(r.profile, r.mode, r.precision)].cost
        kwh_yr = c.energy_kwh / c.horizon_years
        t.add_row(str(r.rank), r.profile, r.mode, r.precision, r.verdict, str(r.devices), fmt(c.purchase),
                  fmt(c.energy_cost), fmt(c.total), fmt(r.cost_per_million_inferences), fmt(kwh_yr),
                  "-" if c.co2_kg is None else fmt(c.co2_kg), c.price_basis)
    unranked = sorted(name for name, s in feasibility.summary.items()
                      if name not in {r.profile for r in feasibility.ranking})
    why = f"not ranked (nothing feasible with accuracy kept, or no price): {', '.join(unranked)}; "
    t.caption = (why if unranked else "") + "not counted: " + EXCLUDED
    return t
