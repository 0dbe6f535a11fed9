"""NVIDIA GPUs through NVML -- the only module that imports ``pynvml`` (from nvidia-ml-py).

Per GPU, best first:

* ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta and newer): a
  counter, differenced per window. Updates about every 100 ms, so windows under ~1 s are noisy.
* ``nvmlDeviceGetPowerUsage`` (mW; a 1 s average on Ampere and newer), polled on a background
  thread and integrated -- for older or virtual GPUs that answer NotSupported to the counter.

A GPU that answers neither is skipped with the reason. Pass ``nvml=`` (any object with the
same functions, ``NVMLError`` and ``NVML_ERROR_NOT_SUPPORTED``) to test without a GPU.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hackforge_edge.energy.base import (
    Backend,
    BackendUnavailable,
    Domain,
    PollingBackend,
    Snapshot,
    load_energy_data,
    parse_band,
)


def load_pynvml() -> Any:
    """Import ``pynvml`` lazily; BackendUnavailable when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        raise BackendUnavailable("nvidia-ml-py (pynvml) not installed") from None
    return pynvml


def _is_not_supported(nvml: Any, exc: BaseException) -> bool:
    return getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3)


def _name(nvml: Any, handle: Any) -> str:
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except nvml.NVMLError:
        return "unknown"
    return name.decode() if isinstance(name, bytes) else str(name)


class _Nvml:
    """Holds the module, and band data shared by both GPU backends."""

    def _setup(self, nvml: Any) -> None:
        cfg = load_energy_data("power_defaults")["nvml"]
        self.nvml = nvml
        self.band = parse_band(cfg["band"])
        self.band_source = cfg["band_source"]

    def _per_gpu(self, read: Callable[[Any], float], scale: float) -> dict[str, "float | BaseException"]:
        """``read(handle) * scale`` per GPU domain; an NVML error is kept as the domain's value."""
        out: dict[str, float | BaseException] = {}
        for i, (handle, _) in self.gpus.items():
            try:
                out[f"gpu:{i}"] = read(handle) * scale
            except self.nvml.NVMLError as exc:
                out[f"gpu:{i}"] = exc
        return out


class NvmlEnergyBackend(_Nvml, Backend):
    method = "nvml-energy-counter"
    kind = "measured"

    def __init__(self, nvml: Any, gpus: dict[int, tuple[Any, str]]):
        """``gpus``: index -> (handle, name)."""
        self._setup(nvml)
        self.gpus = gpus
        super().__init__([Domain(key=f"gpu:{i}", hw_class="gpu") for i in gpus])

    def read(self) -> Snapshot:
        return self._per_gpu(self.nvml.nvmlDeviceGetTotalEnergyConsumption, 1e-3)  # mJ -> J

    def describe(self) -> dict:
        return {**super().describe(), "gpus": {i: n for i, (_, n) in self.gpus.items()}}


class NvmlPowerBackend(_Nvml, PollingBackend):
    method = "nvml-power-polling"
    kind = "measured"

    def __init__(self, nvml: Any, gpus: dict[int, tuple[Any, str]], interval_s: float | None = None):
        self._setup(nvml)
        self.gpus = gpus
        interval = interval_s or float(load_energy_data("power_defaults")["nvml"]["power_poll_interval_s"])
        super().__init__([Domain(key=f"gpu:{i}", hw_class="gpu") for i in gpus], interval)

    def sample_power_w(self) -> Mapping[str, "float | BaseException"]:
        return self._per_gpu(self.nvml.nvmlDeviceGetPowerUsage, 1e-3)  # mW -> W

    def describe(self) -> dict:
        return {**super().describe(), "gpus": {i: n for i, (_, n) in self.gpus.items()},
                "note": "power polled and integrated (trapezoid); on Ampere+ each reading is a 1 s average"}


def discover(nvml: Any = None, *, index: int | None = None,
             interval_s: float | None = None) -> tuple[list[Backend], list[tuple[str, str]]]:
    """Backends for the visible GPUs (or only ``index``), and (name, reason) for what was skipped."""
    skipped: list[tuple[str, str]] = []
    try:
        nvml = nvml if nvml is not None else load_pynvml()
    except BackendUnavailable as exc:
        return [], [("nvml", str(exc))]
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as exc:
        return [], [("nvml", f"NVML unavailable ({exc}); no NVIDIA driver or GPU")]
    if count == 0:
        return [], [("nvml", "NVML reports no GPUs")]
    indices = [index] if index is not None else list(range(count))
    counters: dict[int, tuple[Any, str]] = {}
    pollers: dict[int, tuple[Any, str]] = {}
    for i in indices:
        if i >= count:
            skipped.append((f"nvml:gpu{i}", f"GPU index {i} not present (NVML sees {count})"))
            continue
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
        except nvml.NVMLError as exc:
            skipped.append((f"nvml:gpu{i}", f"no handle ({exc})"))
            continue
        name = _name(nvml, handle)
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            counters[i] = (handle, name)
            continue
        except nvml.NVMLError as exc:
            why = "NotSupported (pre-Volta or virtual GPU)" if _is_not_supported(nvml, exc) else str(exc)
            skipped.append((f"nvml-energy-counter:gpu{i}", f"{name}: energy counter {why}; trying power polling"))
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
            pollers[i] = (handle, name)
        except nvml.NVMLError as exc:
            skipped.append((f"nvml-power-polling:gpu{i}", f"{name}: power reading unavailable ({exc})"))
    backends: list[Backend] = []
    if counters:
        backends.append(NvmlEnergyBackend(nvml, counters))
    if pollers:
        backends.append(NvmlPowerBackend(nvml, pollers, interval_s))
    return backends, skipped
