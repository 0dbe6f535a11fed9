"""``hf-edge export-triton``: a Triton Inference Server model repository from a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export_triton(
    bundle: Path = typer.Argument(..., help="A complete run bundle (verified against its manifest)."),
    out: Path = typer.Option(Path("model_repository"), help="Model repository root; the model goes "
                                                            "into OUT/<name>/."),
    name: Optional[str] = typer.Option(None, help="Model name in Triton (default: the bundle's directory name)."),
    max_batch_size: int = typer.Option(8, help="Triton max_batch_size (0 = no batching by Triton)."),
    dynamic_batching: bool = typer.Option(True, help="Let Triton group concurrent requests into "
                                                     "batches (pays on GPUs; measure on your CPU first)."),
    max_queue_delay_us: int = typer.Option(100, help="Longest wait to fill a dynamic batch (µs)."),
    instance_kind: str = typer.Option("auto", help="cpu | gpu | auto (Triton's choice)."),
    instance_count: int = typer.Option(1, help="Model instances per device."),
    tensorrt: bool = typer.Option(False, help="Add the TensorRT execution accelerator (GPU instances); "
                                              "engines are built on the serving GPU at load time."),
    tensorrt_precision: str = typer.Option("FP16", help="TensorRT precision_mode: FP32 or FP16."),
    overwrite: bool = typer.Option(False, help="Replace OUT/<name> if it exists."),
    allow_incomplete: bool = typer.Option(False, help="Export a bundle that fails verification (warns)."),
) -> None:
    """Write OUT/<name>/config.pbtxt, OUT/<name>/1/model.onnx, labels.txt and a preprocessing note."""
    from hackforge_edge.serving.triton import TritonOptions
    from hackforge_edge.serving.triton import export_triton as _export

    opts = TritonOptions(name=name, max_batch_size=max_batch_size, dynamic_batching=dynamic_batching,
                         max_queue_delay_us=max_queue_delay_us, instance_kind=instance_kind,
                         instance_count=instance_count, tensorrt=tensorrt,
                         tensorrt_precision=tensorrt_precision)
    model_dir = _export(bundle, out, opts, allow_incomplete=allow_incomplete, overwrite=overwrite)
    typer.echo(f"wrote {model_dir}/config.pbtxt and {model_dir}/1/model.onnx")
    typer.echo(f"start Triton on it: tritonserver --model-repository={Path(out).resolve()} "
               "(see docker/README.md)")
