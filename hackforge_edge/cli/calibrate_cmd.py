"""`hf-edge calibrate`: fit a profile's engine efficiencies to latencies measured on its device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hackforge_edge.errors import UsageError


def calibrate(
    profile: str = typer.Option("local", "--profile", help="profile to calibrate (default: this machine)"),
    measured: Optional[Path] = typer.Option(
        None, "--measured",
        help="CSV/YAML of latencies measured on that device: model (path or reference name), "
             "batch, latency_ms[, seq_len, mode]"),
    models: str = typer.Option("mobilenet_v2,efficientnet_b0,resnet18,resnet50,bert-small",
                               "--models", help="reference models to measure here (local only)"),
    batch_sizes: str = typer.Option("1,4", "--batch-sizes", help="batch sizes to measure (local only)"),
    runs: int = typer.Option(20, "--runs", min=3, help="interleaved timed rounds (the minimum is fitted)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="onnxruntime intra-op threads"),
) -> None:
    """Calibrate the latency model.

    Without --measured: export the reference models (random weights) to ONNX in the cache
    dir, measure them here with onnxruntime, and fit the `local` profile's ort-cpu engine.
    That fit is also used, with a widened band, as a prior for other ort-cpu profiles.
    With --measured: fit PROFILE to latencies you measured on that device.
    """
    from rich.table import Table

    from hackforge_edge.cli._console import make_console
    from hackforge_edge.cli._options import parse_batch_sizes
    from hackforge_edge.profiling import calibrate as cal_mod

    cal_mod.require_scipy_optimize()      # before any measuring: one line naming the extra
    if measured is not None:
        cal = cal_mod.calibrate_from_measured(profile, measured)
    else:
        if profile != "local":
            raise UsageError(f"only `local` can be measured here; to calibrate {profile} pass "
                             "--measured FILE with latencies measured on that device")
        names = tuple(n.strip() for n in models.split(",") if n.strip())
        unknown = [n for n in names if n not in cal_mod.REFERENCE_MODELS]
        if unknown or not names:
            raise UsageError(f"--models: unknown {unknown} (known: {', '.join(cal_mod.REFERENCE_MODELS)})")
        cal = cal_mod.calibrate_local(names, batch_sizes=parse_batch_sizes(batch_sizes), runs=runs,
                                      threads=threads, progress=lambda m: typer.echo(m, err=True))
    table = Table(title=f"calibration of {cal.profile} ({cal.engine}) on {cal.device}")
    for col in ("model", "batch", "measured ms", "fitted ms", "residual %"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for r in cal.residuals:
        table.add_row(r["model"], str(r["batch"]), f"{r['measured_ms']:.2f}",
                      f"{r['predicted_ms']:.2f}",
                      f"{(r['predicted_ms'] / r['measured_ms'] - 1) * 100:+.1f}")
    make_console().print(table)
    p = cal.params
    typer.echo(f"eta_c {p['eta_c']:.3f}  eta_c_depthwise {p['eta_c_depthwise']:.3f}  "
               f"eta_m {p['eta_m']:.3f}  t_launch {p['t_launch_us']:.1f} us  "
               f"t_host {p['t_host_ms']:.3f} ms")
    typer.echo(f"band x{cal.band[0]:.2f} .. x{cal.band[1]:.2f} (rms log residual "
               f"{cal.rms_log_residual:.3f}, {cal.n_points} points); "
               f"saved {cal_mod.calibration_path(cal.profile)}")
    if cal.rms_log_residual > 0.25:
        typer.echo("warning: large residuals; latencies this noisy usually mean other processes "
                   "were using the CPU. Re-run on an idle machine for a tighter band.", err=True)
