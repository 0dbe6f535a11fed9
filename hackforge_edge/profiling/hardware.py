"""Hardware profiles: a pydantic schema, the shipped YAML files, and the run-time ``local`` one.

Every number lives in a YAML file with its ``sources``; this module only validates, scales
per power mode and converts units. Units are in the field names (``_tflops``, ``_gbs`` =
GB/s, ``_gb`` = 1e9 bytes, ``_w``, ``_us``, ``_ms``). ``peak_tflops.int8`` is in TOPS.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hackforge_edge.errors import ProfileError

# profiles/*.yaml ship as package data of hackforge_edge.profiling (one YAML per target)
PROFILE_DIR = "profiles"
LOCAL = "local"
LOCAL_DATA = "_local.yaml"
PRECISIONS = ("fp32", "fp16", "int8")
Engine = Literal["tensorrt", "ort-cuda", "ort-cpu"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """A citation. tag: V vendor/primary, S secondary, D derived, A assumed, M measured/detected."""

    ref: str = Field(min_length=3)
    url: str | None = None
    tag: Literal["V", "S", "D", "A", "M"]
    covers: list[str] = Field(default_factory=list)


class Price(_Strict):
    """What one device costs to buy, with where the number comes from and when.

    basis: ``vendor-list`` (the maker's list price), ``retailer`` (a shop's price on ``date``)
    or ``assumed`` (no price read; the reason is in ``source``). tag as in :class:`Source`.
    """

    value: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    date: str = Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$", description="YYYY-MM[-DD] the price was valid (assumed: when it was assumed)")
    basis: Literal["vendor-list", "retailer", "assumed"]
    tag: Literal["V", "S", "D", "A"]
    item: str = Field(min_length=3, description="what the price buys (module, developer kit, card)")
    source: str = Field(min_length=3)
    url: str | None = None


class PeakTflops(_Strict):
    """Dense peaks at the default (maximum) mode; ``int8`` in TOPS; null = not supported."""

    fp32: float = Field(gt=0)
    fp16: float | None = Field(default=None, gt=0)
    int8: float | None = Field(default=None, gt=0)


class PowerMode(_Strict):
    """A named power mode. Compute and bandwidth roofs scale separately (GPU vs EMC clock)."""

    name: str
    idle_w: float = Field(ge=0)
    max_w: float = Field(gt=0)
    compute_scale: float = Field(gt=0, le=1.5)
    bandwidth_scale: float = Field(gt=0, le=1.5)

    @model_validator(mode="after")
    def _idle_below_max(self):
        if self.idle_w > self.max_w:
            raise ValueError(f"idle_w ({self.idle_w}) exceeds max_w ({self.max_w})")
        return self


class CalibratedOn(_Strict):
    """What a shipped profile's efficiencies were fitted to (published-results calibration)."""

    models: list[str] = Field(min_length=1)
    model_families: list[str] = Field(min_length=1)       # architectures (one: band widened)
    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(min_length=1)
    n_points: int = Field(ge=1)
    sources: list[str] = Field(min_length=1)               # URLs of the published tables
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")     # when the fit was made
    data_file: str = Field(min_length=3)
    loo_median_abs_error_pct: float = Field(ge=0)          # leave-one-model-out, |projected/published - 1|
    loo_worst_abs_error_pct: float = Field(ge=0)


class Efficiency(_Strict):
    """Engine efficiencies used by the roofline projection, and where they came from."""

    eta_c: float = Field(gt=0, le=1)            # dense conv / GEMM share of peak compute
    eta_c_depthwise: float = Field(gt=0, le=1)  # depthwise / grouped conv share of peak
    eta_m: float = Field(gt=0, le=1)            # share of peak DRAM bandwidth
    t_launch_us: float = Field(ge=0)            # per kernel (per executed node on CPU)
    t_host_ms: float = Field(ge=0)              # per inference (session run, input binding)
    runtime_overhead_mb: float = Field(ge=0)    # runtime/context memory on top of the model
    cache_speedup: float = Field(default=4.0, ge=1, le=100)  # cache-resident traffic vs DRAM
    # fp32 compute roof = peak_tflops.fp32 x this: TensorRT's FP32 engines on Ampere Jetsons run
    # faster than the FP32 CUDA-core peak allows (likely TF32 tensor cores); fitted, 1 = none
    fp32_compute_scale: float = Field(default=1.0, ge=1, le=16)
    calibrated: bool = False
    band: tuple[float, float] = (0.33, 3.0)     # multiplicative latency band (low, high)
    source: str = Field(min_length=3)
    calibrated_on: CalibratedOn | None = None   # set when fitted to published results

    @field_validator("band")
    @classmethod
    def _band_brackets_one(cls, v):
        lo, hi = v
        if not (0 < lo <= 1 <= hi):
            raise ValueError("band must be (low <= 1 <= high), e.g. [0.5, 2.0]")
        return v


class HardwareProfile(_Strict):
    schema_version: int = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str
    device_type: Literal["gpu", "cpu"]
    engine: Engine
    peak_tflops: PeakTflops
    memory_gb: float = Field(gt=0)
    memory_reserved_gb: float = Field(default=0.0, ge=0)
    bandwidth_gbs: float = Field(gt=0)
    cache_mb: float | None = Field(default=None, gt=0)   # last-level cache the engine can use
    cpu_cores: int | None = Field(default=None, gt=0)
    cpu_ghz: float | None = Field(default=None, gt=0)
    default_mode: str
    power_modes: list[PowerMode] = Field(min_length=1)
    efficiency: Efficiency
    sources: list[Source] = Field(min_length=1)
    price: Price | None = None                # per device; null: no price known (e.g. local)
    notes: str | None = None
    detected: dict[str, Any] | None = None   # only for `local`: what was read and from where
    origin: str | None = None                # file it was loaded from ("detected" for local)

    @model_validator(mode="after")
    def _modes_consistent(self):
        names = [m.name for m in self.power_modes]
        if len(set(names)) != len(names):
            raise ValueError(f"power_modes: duplicate names {names}")
        if self.default_mode not in names:
            raise ValueError(f"default_mode {self.default_mode!r} is not one of {names}")
        if self.memory_reserved_gb >= self.memory_gb:
            raise ValueError("memory_reserved_gb must be below memory_gb")
        return self

    # ---- derived values (SI units) -------------------------------------------------------
    def mode(self, name: str | None = None) -> PowerMode:
        name = name or self.default_mode
        for m in self.power_modes:
            if m.name == name:
                return m
        raise ProfileError(f"profile {self.name}: unknown mode {name!r} "
                           f"(known: {', '.join(m.name for m in self.power_modes)})")

    def peak_flops(self, precision: str = "fp32", mode: str | None = None) -> float | None:
        """Peak FLOP/s (OP/s for int8) in ``mode``; None when the precision is unsupported."""
        if precision not in PRECISIONS:
            raise ProfileError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
        tflops = getattr(self.peak_tflops, precision)
        return None if tflops is None else tflops * 1e12 * self.mode(mode).compute_scale

    def bandwidth_bps(self, mode: str | None = None) -> float:
        """Peak DRAM bandwidth in bytes/s in ``mode``."""
        return self.bandwidth_gbs * 1e9 * self.mode(mode).bandwidth_scale

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1e9)

    @property
    def memory_available_bytes(self) -> int:
        """Capacity left for the model after the OS / system reservation."""
        return int((self.memory_gb - self.memory_reserved_gb) * 1e9)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=False)


# ---- loading ---------------------------------------------------------------------------------
def _profile_dir():
    return resources.files("hackforge_edge.profiling").joinpath(PROFILE_DIR)


def _shipped_files() -> dict[str, Any]:
    out = {}
    for entry in _profile_dir().iterdir():
        n = entry.name
        if n.endswith(".yaml") and not n.startswith("_"):
            out[n[: -len(".yaml")]] = entry
    return out


def list_profiles() -> list[str]:
    """Names of the shipped profiles plus ``local``, sorted."""
    return sorted([*_shipped_files(), LOCAL])


def _format_validation(where: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        parts.append(f"field '{loc}': {err.get('msg', 'invalid')}")
    return f"{where}: invalid profile: " + "; ".join(parts)


def profile_from_dict(data: Any, where: str) -> HardwareProfile:
    """Validate a mapping as a profile; errors name ``where`` and every failing field."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a YAML mapping, got {type(data).__name__}")
    data = {**data, "origin": data.get("origin") or where}
    try:
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_format_validation(where, exc)) from None


def _read_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ProfileError(f"{where}: not valid YAML{at}" + (f" ({problem})" if problem else "")) from None


def load_profile_file(path: str | os.PathLike) -> HardwareProfile:
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"{path}: profile file not found")
    return profile_from_dict(_read_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))


def load_profile(name_or_path: str | os.PathLike | HardwareProfile, *,
                 tdp_w: float | None = None) -> HardwareProfile:
    """A shipped profile by name, ``local`` (detected now), or a user YAML by path."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    s = str(name_or_path)
    if s == LOCAL:
        return detect_local(tdp_w=tdp_w)
    if s.endswith((".yaml", ".yml")) or os.sep in s or Path(s).is_file():
        return load_profile_file(s)
    files = _shipped_files()
    if s not in files:
        raise ProfileError(f"unknown profile {s!r} (known: {', '.join(list_profiles())}; "
                           "or pass a path to a YAML file)")
    entry = files[s]
    return profile_from_dict(_read_yaml(entry.read_text(encoding="utf-8"), f"{s}.yaml"),
                             f"hackforge_edge/profiling/{PROFILE_DIR}/{s}.yaml")


@lru_cache(maxsize=1)
def local_data() -> dict:
    """The `_local.yaml` table (ISA FLOP/cycle, known CPUs, fallbacks, ort-cpu prior)."""
    entry = _profile_dir() / LOCAL_DATA
    return _read_yaml(entry.read_text(encoding="utf-8"), f"hackforge_edge/profiling/{PROFILE_DIR}/{LOCAL_DATA}")


# ---- the `local` profile ----------------------------------------------------------------------
def read_cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model string, flags and MHz from /proc/cpuinfo (empty values where absent)."""
    first: dict[str, str] = {}
    flags, mhz = set(), None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if val:
            first.setdefault(key, val)
        if key in ("flags", "features") and not flags:
            flags = set(val.split())
        elif key == "cpu mhz" and mhz is None:
            try:
                mhz = float(val)
            except ValueError:
                pass
    # x86: "model name"; arm: "Model" (board) / "Hardware"; x86's numeric "model" is useless
    model = next((first[k] for k in ("model name", "cpu model", "model", "hardware")
                  if k in first and not first[k].isdigit()), None)
    return {"model": model or platform.processor() or platform.machine() or "unknown CPU",
            "flags": flags, "mhz": mhz}


def _first_flag(table: list[dict], flags: set[str]) -> dict | None:
    for row in table:
        if row["flag"] in flags:
            return row
    return None


# ISA flags worth naming in the local profile's sources and ``detected`` block
_REPORTED_ISA_FLAGS = {
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16", "asimd", "asimddp", "asimdhp", "sve"}


def _detect_cores(psutil: Any, threads: int | None) -> tuple[int, int, int, int]:
    """(logical, physical, usable, cores counted for the peak): affinity- and thread-limited."""
    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    cores = max(1, min(physical, usable))
    if threads:
        cores = max(1, min(cores, int(threads)))
    return logical, physical, usable, cores


def _detect_ghz(psutil: Any, info: dict) -> tuple[float, str]:
    """(clock in GHz, where it came from): psutil max > /proc/cpuinfo > psutil current > 2.0."""
    freq = None
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, FileNotFoundError):
        freq = None
    if freq is not None and freq.max:
        return freq.max / 1000.0, "psutil.cpu_freq().max"
    if info["mhz"]:
        return info["mhz"] / 1000.0, "/proc/cpuinfo cpu MHz (current clock)"
    if freq is not None and freq.current:
        return freq.current / 1000.0, "psutil.cpu_freq().current"
    return 2.0, "assumed 2.0 GHz (clock not readable)"


def _fp32_flops_per_cycle(data: dict, known: dict | None, flags: set[str]) -> tuple[Any, str]:
    """(FP32 FLOP per cycle per core, source): known-CPU table > ISA flag table > assumed 8."""
    isa = _first_flag(data["isa_fp32_flops_per_cycle"], flags)
    fpc = (known or {}).get("fp32_flops_per_cycle") or (isa["value"] if isa else 8)
    fpc_source = ("known CPU table" if known and known.get("fp32_flops_per_cycle")
                  else f"ISA flag {isa['flag']}: {isa['note']}" if isa else "assumed 8 (no SIMD flags)")
    return fpc, fpc_source


def _local_fallbacks(data: dict) -> tuple[dict, dict]:
    """(`_local.yaml` fallback block with the energy package's CPU assumptions, those assumptions)."""
    fb = dict(data["fallback"])
    # the CPU power estimate's assumptions live in one place: the energy package's data file
    from hackforge_edge.energy.base import load_energy_data

    est = load_energy_data("power_defaults")["cpu_estimate"]
    fb["tdp_w_per_core"] = float(est["default_tdp_w_per_core"])
    fb["energy_band"] = [1.0 + float(est["band"][0]), 1.0 + float(est["band"][1])]  # as factors
    return fb, est


def _local_power(tdp_w: float | None, known: dict | None, cores: int, fb: dict,
                 est: dict) -> tuple[float, str, str, float]:
    """(TDP W, source, tag, idle W): argument > HF_EDGE_LOCAL_TDP_W > known CPU > per core."""
    user_tdp = tdp_w if tdp_w is not None else os.environ.get("HF_EDGE_LOCAL_TDP_W")
    if user_tdp is not None:
        try:
            tdp, tdp_source, tdp_tag = float(user_tdp), "user value", "M"
        except ValueError:
            raise ProfileError(f"HF_EDGE_LOCAL_TDP_W={user_tdp!r} is not a number") from None
        if tdp <= 0:
            raise ProfileError(f"local TDP must be positive, got {tdp}")
    elif known and known.get("tdp_w"):
        share = cores / known["per_socket_cores"] if known.get("per_socket_cores") else 1.0
        tdp = known["tdp_w"] * min(1.0, share)
        tdp_source, tdp_tag = f"known CPU table: {known['source']}" + (
            f" (x {cores}/{known['per_socket_cores']} cores)" if share < 1 else ""), "S"
    else:
        tdp = fb["tdp_w_per_core"] * cores
        tdp_source, tdp_tag = (f"assumed {fb['tdp_w_per_core']} W per core x {cores} cores "
                               f"({est['default_tdp_source']})", "A")
    idle = (known or {}).get("idle_w") if (known and user_tdp is None) else None
    idle = idle if idle is not None else fb["idle_fraction"] * tdp
    return tdp, tdp_source, tdp_tag, idle


def _local_bandwidth(known: dict | None, fb: dict, cores: int) -> tuple[Any, str]:
    """(memory bandwidth GB/s, source): known-CPU table, else assumed per core with a minimum."""
    if known and known.get("bandwidth_gbs"):
        return known["bandwidth_gbs"], f"known CPU table: {known['source']}"
    bw = max(fb["bandwidth_gbs_min"], fb["bandwidth_gbs_per_core"] * cores)
    return bw, f"assumed {fb['bandwidth_gbs_per_core']} GB/s per core (min {fb['bandwidth_gbs_min']})"


def detect_local(*, tdp_w: float | None = None, cpuinfo: dict | None = None,
                 threads: int | None = None) -> HardwareProfile:
    """Build the ``local`` profile from /proc/cpuinfo + psutil and `_local.yaml`.

    TDP precedence: ``tdp_w`` argument > ``HF_EDGE_LOCAL_TDP_W`` > known-CPU table > assumed
    per-core default. The profile's ``detected`` block records where each value came from.
    ``threads`` limits the cores counted in the compute roof (a run with fewer intra-op threads).
    """
    import psutil

    data = local_data()
    info = cpuinfo or read_cpuinfo()
    flags = set(info["flags"])
    logical, physical, usable, cores = _detect_cores(psutil, threads)
    known = next((k for k in data.get("known_cpus", [])
                  if re.search(k["match"], info["model"], re.IGNORECASE)), None)
    ghz, ghz_source = _detect_ghz(psutil, info)
    fpc, fpc_source = _fp32_flops_per_cycle(data, known, flags)
    int8_row = _first_flag(data["isa_int8_factor"], flags)
    fp16_row = _first_flag(data.get("isa_fp16_factor", []), flags)
    fp32_tflops = cores * ghz * 1e9 * fpc / 1e12
    fb, est = _local_fallbacks(data)
    tdp, tdp_source, tdp_tag, idle = _local_power(tdp_w, known, cores, fb, est)
    bw, bw_source = _local_bandwidth(known, fb, cores)
    cache_mb, cache_source = _local_cache_mb(cores, data)
    mem_bytes = psutil.virtual_memory().total
    interesting = sorted(f for f in flags if f in _REPORTED_ISA_FLAGS)
    detected = {
        "cpu_model": info["model"], "arch": platform.machine(), "physical_cores": physical,
        "logical_cores": logical, "usable_cores": usable, "cores_used_for_peak": cores,
        "ghz": round(ghz, 3), "ghz_source": ghz_source, "isa_flags": interesting,
        "fp32_flops_per_cycle": fpc, "fp32_flops_per_cycle_source": fpc_source,
        "memory_bytes": int(mem_bytes), "tdp_w": round(tdp, 2), "tdp_source": tdp_source,
        "idle_w": round(idle, 2), "bandwidth_gbs": bw, "bandwidth_source": bw_source,
        "cache_mb": cache_mb, "cache_source": cache_source,
        "energy_band": list(fb["energy_band"]), "known_cpu_entry": known["match"] if known else None,
    }
    sources = [
        {"ref": f"/proc/cpuinfo + psutil on this machine: {info['model']}, {cores} cores, "
                f"{ghz:.2f} GHz ({ghz_source}), flags {' '.join(interesting) or 'none'}",
         "tag": "M", "covers": ["cpu_cores", "cpu_ghz", "memory_gb"]},
        {"ref": f"peaks derived: cores x GHz x {fpc} FP32 FLOP/cycle ({fpc_source}); "
                "int8/fp16 factors from ISA flags (profiling/profiles/_local.yaml)",
         "tag": "D", "covers": ["peak_tflops.fp32", "peak_tflops.fp16", "peak_tflops.int8"]},
        {"ref": f"TDP {tdp:.1f} W: {tdp_source}", "tag": tdp_tag,
         "covers": ["power_modes.max_w", "power_modes.idle_w"]},
        {"ref": f"bandwidth {bw} GB/s: {bw_source}", "tag": "S" if known else "A",
         "covers": ["bandwidth_gbs"]},
    ]
    profile = {
        "name": LOCAL,
        "display_name": f"this machine: {info['model']} ({cores} cores)",
        "device_type": "cpu",
        "engine": "ort-cpu",
        "peak_tflops": {
            "fp32": fp32_tflops,
            "fp16": fp32_tflops * fp16_row["value"] if fp16_row else None,
            "int8": fp32_tflops * int8_row["value"] if int8_row else None,
        },
        "memory_gb": mem_bytes / 1e9, "memory_reserved_gb": 0.0,
        "bandwidth_gbs": bw, "cache_mb": cache_mb, "cpu_cores": cores, "cpu_ghz": ghz,
        "default_mode": "default",
        "power_modes": [{"name": "default", "idle_w": idle, "max_w": tdp,
                         "compute_scale": 1.0, "bandwidth_scale": 1.0}],
        "efficiency": dict(data["efficiency"]),
        "sources": sources,
        "notes": "detected at run time; TDP and bandwidth are not readable from the OS",
        "detected": detected,
        "origin": "detected",
    }
    return profile_from_dict(profile, "local (detected)")


def _local_cache_mb(cores: int, data: dict) -> tuple[float | None, str]:
    """Private L2 x cores + the L3 share of those cores, from /sys (L3 share capped per core)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    sizes: dict[int, float] = {}
    try:
        for idx in sorted(base.glob("index*")):
            if (idx / "type").read_text().strip() == "Instruction":
                continue
            level = int((idx / "level").read_text().strip())
            text = (idx / "size").read_text().strip().upper()
            mult = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}.get(text[-1], 1 / (1024 * 1024))
            sizes[level] = float(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        return None, "not readable from /sys (no cache effect modelled)"
    if not sizes:
        return None, "not readable from /sys (no cache effect modelled)"
    cap = data["fallback"]["l3_mb_per_core_cap"]
    l2 = sizes.get(2, 0.0) * cores
    l3 = min(sizes.get(3, 0.0), cap * cores)
    return round(l2 + l3, 2), (f"/sys cpu0 cache: L2 {sizes.get(2, 0):g} MB x {cores} cores + "
                               f"L3 {sizes.get(3, 0):g} MB capped at {cap} MB per core")
