"""Limits and knobs of the HTTP server, with one place deciding their precedence.

Precedence (as codecarbon does it): an explicit value (CLI flag / keyword) wins, then the
environment variable, then the default below. All problems are collected and raised together
as one :class:`~hackforge_edge.errors.ServingError`.

Environment variables::

    HF_EDGE_API_KEY            bearer token; unset or empty = no authentication
    HF_EDGE_MAX_BODY_MB        maximum request body, MiB            (default 16)
    HF_EDGE_MAX_BATCH          maximum items in one request         (default 32)
    HF_EDGE_MAX_IMAGE_SIDE     maximum image width or height, px    (default 8192)
    HF_EDGE_MAX_IMAGE_MPIX     maximum image area, megapixels       (default 40)
    HF_EDGE_MAX_TEXT_CHARS     maximum characters per text (text models) (default 20000)
    HF_EDGE_INTRA_OP_THREADS   onnxruntime intra-op threads, 0=ORT default (default 0)
    HF_EDGE_INTER_OP_THREADS   onnxruntime inter-op threads, 0=ORT default (default 0)
    HF_EDGE_MAX_CONCURRENT_RUNS session.run calls at once, 0 = auto (see below)  (default 0)
    HF_EDGE_WARMUP_RUNS        session.run calls on a dummy input before ready (default 3)
    HF_EDGE_PROVIDERS          comma list of execution providers (default: best available)
    HF_EDGE_TRT_CACHE_DIR      directory for TensorRT engine caches (default: none)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from hackforge_edge.errors import ServingError

MIB = 1024 * 1024

# name -> (env var, parser). Body size is given in MiB on the command line and in the
# environment because that is how people think about it; it is stored in bytes.
_ENV = {
    "api_key": "HF_EDGE_API_KEY",
    "max_body_bytes": "HF_EDGE_MAX_BODY_MB",
    "max_batch": "HF_EDGE_MAX_BATCH",
    "max_image_side": "HF_EDGE_MAX_IMAGE_SIDE",
    "max_image_pixels": "HF_EDGE_MAX_IMAGE_MPIX",
    "max_text_chars": "HF_EDGE_MAX_TEXT_CHARS",
    "intra_op_threads": "HF_EDGE_INTRA_OP_THREADS",
    "inter_op_threads": "HF_EDGE_INTER_OP_THREADS",
    "warmup_runs": "HF_EDGE_WARMUP_RUNS",
    "max_concurrent_runs": "HF_EDGE_MAX_CONCURRENT_RUNS",
    "providers": "HF_EDGE_PROVIDERS",
    "trt_cache_dir": "HF_EDGE_TRT_CACHE_DIR",
}


@dataclass(frozen=True)
class ServeSettings:
    """Server limits. Units are in the names: bytes, pixels, counts."""

    max_body_bytes: int = 16 * MIB
    max_batch: int = 32
    max_image_side: int = 8192
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 20_000  # per text; tokens beyond the bundle's max_length are truncated
    api_key: str | None = field(default=None, repr=False)  # never echoed in logs or metadata
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    warmup_runs: int = 3
    max_concurrent_runs: int = 0
    providers: tuple[str, ...] | None = None
    trt_cache_dir: str | None = None

    def __post_init__(self) -> None:
        problems = []
        for name, lo in (("max_body_bytes", 1), ("max_batch", 1), ("max_image_side", 1),
                         ("max_image_pixels", 1), ("max_text_chars", 1), ("intra_op_threads", 0),
                         ("inter_op_threads", 0), ("warmup_runs", 0),
                         ("max_concurrent_runs", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                problems.append(f"{name} must be an integer >= {lo} (got {value!r})")
        if self.api_key is not None and (not self.api_key.isascii() or not self.api_key.isprintable()
                                         or " " in self.api_key):
            problems.append("the API key must be printable ASCII without spaces")
        if problems:
            raise ServingError("invalid server settings: " + "; ".join(problems))

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key)

    def concurrent_runs(self, cpu_provider: bool, cores: int | None = None) -> int:
        """How many ``session.run`` calls may execute at once.

        Auto (0) on CPU: cores // threads-per-run, at least 1 (threads-per-run is
        ``intra_op_threads``, or every core when 0, onnxruntime's default). More concurrent runs
        than that only oversubscribe the cores: measured on 2 cores with MobileNetV2, 8
        concurrent single-threaded runs gave ~25 % fewer runs/s than 2. On GPU providers auto
        is 2, so one run can be set up while another executes.
        """
        if self.max_concurrent_runs:
            return self.max_concurrent_runs
        if not cpu_provider:
            return 2
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        per_run = self.intra_op_threads or cores
        return max(1, cores // per_run)

    def public(self) -> dict[str, Any]:
        """The settings as plain JSON, without the API key (only whether one is set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["providers"] = list(self.providers) if self.providers else None
        out["auth"] = self.auth_enabled
        return out


def _parse(name: str, raw: str) -> Any:
    raw = raw.strip()
    if name in ("api_key", "trt_cache_dir"):
        return raw or None
    if name == "providers":
        return tuple(p.strip() for p in raw.split(",") if p.strip()) or None
    if name == "max_body_bytes":
        return int(round(float(raw) * MIB))
    if name == "max_image_pixels":
        return int(round(float(raw) * 1_000_000))
    return int(raw)


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServeSettings:
    """Build settings: ``overrides`` (non-None values) > environment > defaults.

    ``overrides`` uses the field names and units of :class:`ServeSettings` (bytes, pixels).
    Raises ServingError listing every unparsable environment value and every bad limit.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems = []
    for name, var in _ENV.items():
        if var in environ:
            try:
                values[name] = _parse(name, environ[var])
            except ValueError:
                problems.append(f"{var}={environ[var]!r} is not a number")
    if problems:
        raise ServingError("invalid server settings: " + "; ".join(problems))
    for name, value in (overrides or {}).items():
        if name not in ServeSettings.__dataclass_fields__:
            raise ServingError(f"unknown server setting {name!r}")
        if value is not None:
            values[name] = tuple(value) if name == "providers" else value
    return replace(ServeSettings(), **values)
