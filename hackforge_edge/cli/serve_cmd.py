"""``hf-edge serve``: serve a bundle (or a bare .onnx) over HTTP with uvicorn.

Binds 127.0.0.1 by default; pass ``--host 0.0.0.0`` to listen on the network (the Docker
images do, inside the container). The API key comes only from ``HF_EDGE_API_KEY`` so it never
lands in shell history or ``ps`` output.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve(
    model: Path = typer.Argument(..., help="Bundle directory (with model.onnx, labels.json, "
                                           "preprocess.json) or a bare .onnx file."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 = every interface)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0 = pick a free one)."),
    providers: Optional[List[str]] = typer.Option(
        None, "--providers", help="Execution providers in priority order, comma-separated or repeated "
                                  "(tensorrt, cuda, cpu, ...). Default: TensorRT, CUDA, CPU where available."),
    max_batch: Optional[int] = typer.Option(None, help="Most items in one request [env HF_EDGE_MAX_BATCH, 32]."),
    max_body_mb: Optional[float] = typer.Option(None, help="Largest request body in MiB "
                                                           "[env HF_EDGE_MAX_BODY_MB, 16]."),
    max_image_side: Optional[int] = typer.Option(None, help="Largest image width/height in pixels "
                                                            "[env HF_EDGE_MAX_IMAGE_SIDE, 8192]."),
    max_image_mpix: Optional[float] = typer.Option(None, help="Largest image area in megapixels "
                                                              "[env HF_EDGE_MAX_IMAGE_MPIX, 40]."),
    max_text_chars: Optional[int] = typer.Option(None, help="Text models: most characters per text "
                                                            "[env HF_EDGE_MAX_TEXT_CHARS, 20000]."),
    intra_op_threads: Optional[int] = typer.Option(
        None, help="onnxruntime intra-op threads per run; 0 = onnxruntime's default (one per core) "
                   "[env HF_EDGE_INTRA_OP_THREADS]."),
    inter_op_threads: Optional[int] = typer.Option(None, help="onnxruntime inter-op threads; 0 = default "
                                                              "[env HF_EDGE_INTER_OP_THREADS]."),
    max_concurrent_runs: Optional[int] = typer.Option(
        None, help="session.run calls executing at once; 0 = auto: cores // intra-op threads on CPU "
                   "(1 with the defaults), 2 on GPU [env HF_EDGE_MAX_CONCURRENT_RUNS]."),
    warmup_runs: Optional[int] = typer.Option(None, help="Warm-up runs before /readyz says ready "
                                                         "[env HF_EDGE_WARMUP_RUNS, 3]."),
    fast_jpeg: Optional[bool] = typer.Option(
        None, "--fast-jpeg/--exact-jpeg", help="Decode JPEGs >= 4x the input side at a reduced scale (>= 2x) "
                                               "in the DCT domain (default) or always at full size, "
                                               "exactly as training [env HF_EDGE_FAST_JPEG, 1]."),
    micro_batch_ms: Optional[float] = typer.Option(
        None, help="Join concurrent requests arriving within this many ms into one run; 0 = off "
                   "(default; measure with hf-edge benchmark --batch-sizes 1,8 first) "
                   "[env HF_EDGE_MICRO_BATCH_MS]."),
    micro_batch_max: Optional[int] = typer.Option(None, help="Most rows in one micro-batch "
                                                             "[env HF_EDGE_MICRO_BATCH_MAX, 8]."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(True, help="Log every request line."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Serve a bundle without manifest.json, or whose files no longer "
                                          "match it, with a warning (default: refuse it)."),
) -> None:
    """Serve MODEL over HTTP: /healthz /readyz /v1/metadata /v1/predict /metrics."""
    import logging

    import uvicorn

    from hackforge_edge.serving.app import create_app
    from hackforge_edge.serving.settings import load_settings

    names = [p.strip() for item in (providers or []) for p in item.split(",") if p.strip()]
    settings = load_settings({
        "providers": names or None,
        "max_batch": max_batch,
        "max_body_mb": max_body_mb,
        "max_image_side": max_image_side,
        "max_image_mpix": max_image_mpix,
        "max_text_chars": max_text_chars,
        "intra_op_threads": intra_op_threads,
        "inter_op_threads": inter_op_threads,
        "warmup_runs": warmup_runs,
        "max_concurrent_runs": max_concurrent_runs,
        "fast_jpeg": None if fast_jpeg is None else int(fast_jpeg),
        "micro_batch_ms": micro_batch_ms,
        "micro_batch_max": micro_batch_max,
    })
    # the server's own lines (model loaded, providers, warm-up) in uvicorn's style
    level = "DEBUG" if log_level.lower() == "trace" else log_level.upper()
    logging.basicConfig(level=level, format="%(levelname)s:     %(message)s")
    # the bundle is verified (Bundle.open), and providers checked, before anything starts
    app = create_app(model, settings=settings, allow_incomplete=allow_incomplete)
    # create the session before uvicorn starts: a model onnxruntime cannot load is then one
    # line and a non-zero exit, not a lifespan traceback
    app.state.host.load()
    if host not in _LOOPBACK and not settings.auth_enabled:
        typer.echo(f"warning: listening on {host} without HF_EDGE_API_KEY: anyone who can reach this "
                   "port can use the model", err=True)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        from hackforge_edge.errors import ServingError

        # the lifespan failed (model not loadable) or the port was taken; uvicorn logged details
        raise ServingError(app.state.host.load_error or f"the server did not start on {host}:{port}")
