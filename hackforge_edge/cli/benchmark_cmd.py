"""`hf-edge benchmark MODEL_OR_BUNDLE`: measure latency, memory and energy with onnxruntime here."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def benchmark(
    model: str = typer.Argument(..., help="an .onnx file or a run bundle directory"),
    batch_sizes: str = typer.Option("1,4,8", "--batch-sizes", help="comma-separated batch sizes"),
    runs: int = typer.Option(20, "--runs", min=1, help="timed runs per batch size (upper bound)"),
    warmup: int = typer.Option(3, "--warmup", min=0, help="untimed warm-up runs per batch size"),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, help="sequence length for text inputs"),
    input_shape: Optional[list[str]] = typer.Option(None, "--input-shape",
                                                    help="NAME=1x3x224x224 (repeatable)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="onnxruntime intra-op threads"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the result as JSON here"),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                          help="measure a bundle that is incomplete or no longer matches "
                                               "its manifest, with a warning (default: refuse it)"),
) -> None:
    """Measure MODEL on this machine (onnxruntime CPU): latency percentiles, throughput, memory,
    energy per inference (measured by a meter when one is available, else estimated)."""
    from rich.table import Table

    from hackforge_edge.bundle import atomic_write_json, open_model
    from hackforge_edge.cli._console import make_console
    from hackforge_edge.cli._options import parse_batch_sizes, parse_input_shapes
    from hackforge_edge.profiling.measure import measure

    ref = open_model(model, allow_incomplete=allow_incomplete)

    sizes = parse_batch_sizes(batch_sizes)
    shapes = parse_input_shapes(input_shape)
    meter = _meter()
    if seq_len is None and ref.bundle_dir is not None:
        seq_len = _bundle_seq_len(ref)
    m = measure(ref.onnx_path, batch_sizes=sizes, runs=runs, warmup=warmup, seq_len=seq_len,
                input_shapes=shapes, threads=threads, meter=meter)
    table = Table(title=f"{ref.onnx_path} on this machine ({', '.join(m.providers)}, "
                        f"onnxruntime {m.onnxruntime_version})")
    for col in ("batch", "runs", "p50 ms", "p95 ms", "p99 ms", "mean ms", "samples/s",
                "energy/inference J", "energy kind"):
        table.add_column(col, justify="right")
    for r in m.batches:
        if r.status != "ok":
            table.add_row(str(r.batch), "-", *(["-"] * 5), "-", f"{r.status}: {r.reason}")
            continue
        lat, e = r.latency_ms, r.energy_per_inference_j or {}
        energy = "-" if e.get("value") is None else f"{e['value']:.3g}"
        if e.get("low") is not None and e.get("high") is not None:
            energy += f" [{e['low']:.2g}-{e['high']:.2g}]"
        table.add_row(str(r.batch), str(r.runs), f"{lat['p50']:.2f}", f"{lat['p95']:.2f}",
                      f"{lat['p99']:.2f}", f"{lat['mean']:.2f}", f"{r.throughput_per_s:.1f}",
                      energy, str(e.get("kind", "-")))
    console = make_console()
    console.print(table)
    mem = m.memory
    typer.echo(f"session creation {m.session_create_s * 1000:.0f} ms (measured); RSS +"
               f"{mem['rss_delta_bytes'] / 1e6:.0f} MB, peak {mem['rss_peak_bytes'] / 1e6:.0f} MB "
               "(measured, psutil)")
    typer.echo("latency: measured wall clock around session.run, warm-up excluded; "
               + (f"energy: {m.batches[0].energy_per_inference_j['method']}"
                  if m.batches and m.batches[0].energy_per_inference_j else ""))
    if json_out:
        atomic_write_json(json_out, m.to_json())
        typer.echo(f"wrote {json_out}")


def _meter():
    """The best energy meter for this machine (a counter where one is readable, else the
    labelled CPU estimate); a bad setting such as HF_EDGE_LOCAL_TDP_W is an error, not ignored."""
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.profiling import load_profile

    detected = getattr(load_profile("local"), "detected", None) or {}
    return make_meter("auto", tdp_w=detected.get("tdp_w"),
                      tdp_origin=detected.get("tdp_source") and f"local hardware profile: {detected['tdp_source']}")


def _bundle_seq_len(ref) -> int | None:
    pre = ref.bundle.read_json_if_present("preprocess.json") or {}
    for key in ("max_length", "seq_len", "sequence_length"):
        if isinstance(pre.get(key), int):
            return pre[key]
    return None
