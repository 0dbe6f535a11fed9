"""`hf-edge profiles list|show`: the hardware profiles shipped with the package, plus `local`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Hardware profiles (shipped YAML files with sources, plus `local`).",
                  no_args_is_help=True)


def _fmt_peak(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if v >= 1 else f"{v * 1000:.0f} G")


@app.command("list")
def list_profiles_cmd() -> None:
    """Table of every profile: engine, fp32/fp16/int8 peaks (T(FL)OPS), memory, bandwidth, modes."""
    from rich.table import Table

    from hackforge_edge.cli._console import make_console
    from hackforge_edge.profiling.hardware import list_profiles, load_profile

    table = Table(title="hardware profiles (peaks dense, at the default mode)")
    for col in ("name", "engine", "fp32 TFLOPS", "fp16 TFLOPS", "int8 TOPS", "memory GB",
                "bandwidth GB/s", "power modes (idle-max W)", "calibrated"):
        table.add_column(col, no_wrap=col == "name",
                         justify="right" if "TF" in col or "GB" in col or "TOPS" in col else "left")
    from hackforge_edge.profiling.calibrate import load_calibration
    for name in list_profiles():
        p = load_profile(name)
        modes = ", ".join(f"{m.name} ({m.idle_w:g}-{m.max_w:g})" for m in p.power_modes)
        cal = load_calibration(p)
        state = ("fit" if cal is not None and cal.profile == p.name
                 else "prior (local fit)" if cal is not None else
                 "yes" if p.efficiency.calibrated else "no")
        table.add_row(p.name, p.engine, _fmt_peak(p.peak_tflops.fp32), _fmt_peak(p.peak_tflops.fp16),
                      _fmt_peak(p.peak_tflops.int8), f"{p.memory_gb:.3g}", f"{p.bandwidth_gbs:.4g}",
                      modes, state)
    make_console().print(table)
    typer.echo("G = GFLOPS/GOPS. `hf-edge profiles show NAME` prints one profile with its sources.")


@app.command("show")
def show(name: str = typer.Argument(..., help="profile name, `local`, or a path to a YAML file"),
         as_json: bool = typer.Option(False, "--json", help="print JSON instead of YAML")) -> None:
    """Print a profile as resolved (validated, with sources; `local` with what was detected)."""
    import json

    import yaml

    from hackforge_edge.profiling.hardware import load_profile

    data = load_profile(name).to_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
