"""Limits and knobs of the HTTP server, read by pydantic-settings.

Precedence is pydantic-settings' own: a value given to the constructor (a CLI flag or
keyword) wins, then the ``HF_EDGE_*`` environment variable, then the default below. Every
problem (flags and environment alike) is collected and raised together as one
:class:`~hackforge_edge.errors.ServingError` that names the flag or the variable.

Environment variables::

    HF_EDGE_API_KEY            bearer token; unset or empty = no authentication
    HF_EDGE_MAX_BODY_MB        maximum request body, MiB            (default 16)
    HF_EDGE_MAX_BATCH          maximum items in one request         (default 32)
    HF_EDGE_MAX_IMAGE_SIDE     maximum image width or height, px    (default 8192)
    HF_EDGE_MAX_IMAGE_MPIX     maximum image area, megapixels       (default 40)
    HF_EDGE_INTRA_OP_THREADS   onnxruntime intra-op threads, 0=ORT default (default 0)
    HF_EDGE_INTER_OP_THREADS   onnxruntime inter-op threads, 0=ORT default (default 0)
    HF_EDGE_MAX_CONCURRENT_RUNS session.run calls at once, 0 = auto (see below)  (default 0)
    HF_EDGE_WARMUP_RUNS        session.run calls on a dummy input before ready (default 3)
    HF_EDGE_PROVIDERS          comma list of execution providers (default: best available)
    HF_EDGE_TRT_CACHE_DIR      directory for TensorRT engine caches (default: none)
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from hackforge_edge.errors import ServingError

MIB = 1024 * 1024
MPIX = 1_000_000
ENV_PREFIX = "HF_EDGE_"
# keyword names in storage units -> the field holding them in the unit people think in
_IN_BYTES = {"max_body_bytes": ("max_body_mb", MIB), "max_image_pixels": ("max_image_mpix", MPIX)}


class ServeSettings(BaseSettings):
    """Server limits. Units are in the names (MiB, megapixels, counts); ``max_body_bytes``
    and ``max_image_pixels`` give the two limits in bytes and pixels.

    Constructing it reads the ``HF_EDGE_*`` environment for every field not given.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    max_body_mb: float = Field(16.0, gt=0)
    max_batch: int = Field(32, ge=1)
    max_image_side: int = Field(8192, ge=1)
    max_image_mpix: float = Field(40.0, gt=0)
    api_key: str | None = Field(None, repr=False)          # never echoed in logs or metadata
    intra_op_threads: int = Field(0, ge=0)
    inter_op_threads: int = Field(0, ge=0)
    warmup_runs: int = Field(3, ge=0)
    max_concurrent_runs: int = Field(0, ge=0)
    providers: Annotated[tuple[str, ...] | None, NoDecode] = None   # env: comma list, not JSON
    trt_cache_dir: str | None = None
    fast_jpeg: int = Field(1, ge=0, le=1)
    """1: decode a JPEG at least four times the model's input side at a reduced scale in the DCT
    domain (libjpeg scaling via Pillow's ``draft``, never below twice the input side) before the
    training resize; 0: always decode at full size (exactly the training path). The difference
    is measured in docker/README.md (benchmarks/jpeg_fast_decode.py)."""
    micro_batch_ms: float = Field(0.0, ge=0, le=1000)
    """Window (ms) in which concurrent requests are joined into one session.run; 0 = off (the
    default: on the 2-core development CPU batching did not lower the time per image)."""
    micro_batch_max: int = Field(8, ge=2)
    max_text_chars: int = Field(20_000, ge=1)
    """Longest text (characters) one item of a text request may have."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ServingError(_describe(exc, given=values)) from None

    @model_validator(mode="before")
    @classmethod
    def _from_storage_units(cls, data: Any) -> Any:
        """Accept ``max_body_bytes=`` / ``max_image_pixels=`` keywords (bytes, pixels)."""
        if isinstance(data, dict):
            data = dict(data)
            for name, (field, unit) in _IN_BYTES.items():
                if data.get(name) is not None:
                    data[field] = data.pop(name) / unit
                data.pop(name, None)
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("api_key", "trt_cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("providers", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if value is None:
            return None
        return tuple(p.strip() for p in value if p and p.strip()) or None

    @field_validator("api_key")
    @classmethod
    def _printable_key(cls, value: str | None) -> str | None:
        if value is not None and (not value.isascii() or not value.isprintable() or " " in value):
            raise ValueError("the API key must be printable ASCII without spaces")
        return value

    @property
    def max_body_bytes(self) -> int:
        return int(round(self.max_body_mb * MIB))

    @property
    def max_image_pixels(self) -> int:
        return int(round(self.max_image_mpix * MPIX))

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
        out = self.model_dump(exclude={"api_key", "max_body_mb", "max_image_mpix"})
        out.update(max_body_bytes=self.max_body_bytes, max_image_pixels=self.max_image_pixels,
                   providers=list(self.providers) if self.providers else None,
                   auth=self.auth_enabled)
        return out


def _reading(environ: Mapping[str, str]) -> type[ServeSettings]:
    """ServeSettings whose environment source reads ``environ`` instead of ``os.environ``."""

    class _Settings(ServeSettings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                       dotenv_settings, file_secret_settings):
            source = EnvSettingsSource(settings_cls)
            source.env_vars = {k.lower(): v for k, v in environ.items()}   # case-insensitive
            return init_settings, source

    _Settings.__name__ = _Settings.__qualname__ = "ServeSettings"
    return _Settings


def _describe(exc: ValidationError, given: Mapping[str, Any]) -> str:
    """One line naming every bad value: the keyword/flag if given, else the variable."""
    flagged = set(given) | {field for name, (field, _) in _IN_BYTES.items() if name in given}
    problems = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if field in flagged:
            problems.append(f"{field}: {msg} (got {err['input']!r})")
        else:
            problems.append(f"{ENV_PREFIX}{field.upper()}={err['input']!r}: {msg}")
    return "invalid server settings: " + "; ".join(problems)


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServeSettings:
    """Build settings: ``overrides`` (non-None values) > environment > defaults.

    ``overrides`` uses the field names of :class:`ServeSettings`, or ``max_body_bytes`` /
    ``max_image_pixels`` in bytes and pixels. ``environ`` replaces ``os.environ`` (tests).
    Raises ServingError listing every unparsable environment value and every bad limit.
    """
    unknown = sorted(set(overrides or {}) - set(ServeSettings.model_fields) - set(_IN_BYTES))
    if unknown:
        raise ServingError(f"unknown server setting {unknown[0]!r}")
    cls = ServeSettings if environ is None else _reading(environ)
    return cls(**{k: v for k, v in (overrides or {}).items() if v is not None})
