"""Estimated energy where nothing can be measured.

* :class:`CpuEstimateBackend`: this process's share of a CPU TDP, after CodeCarbon's process
  tracking mode (power = TDP x process CPU load / CPU count). Integrated over a window that is
  ``process CPU seconds x TDP / logical CPUs``: a counter built from the process's CPU times
  (``os.times()`` -- the same user + system + children figures as
  ``psutil.Process().cpu_times()`` in one syscall), so there is no polling thread and no
  blocking ``cpu_percent(interval=...)``. Idle/baseline power is not attributed to the
  process. Labelled ``estimated``, with the TDP, its origin, and the -60 %/+190 % band
  CodeCarbon's own tests found against RAPL.
* :func:`estimate_inference_energy_j`: energy of one inference from latency and a linear
  utilisation power model, for targets that cannot be metered.
"""

from __future__ import annotations

import math
import os
from typing import Any

from hackforge_edge.energy.base import (
    Backend,
    Domain,
    Snapshot,
    load_energy_data,
    parse_band,
)
from hackforge_edge.errors import MeterError


def _cpu_time_resolution_s() -> float:
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):  # not POSIX: report unknown resolution as 0
        return 0.0


def default_tdp(physical_cores: int) -> tuple[float, str]:
    """(TDP W, origin) from the documented per-core default in power_defaults.yaml."""
    per_core = float(load_energy_data("power_defaults")["cpu_estimate"]["default_tdp_w_per_core"])
    return per_core * physical_cores, f"default: {per_core:g} W per core (no CPU model match) x {physical_cores} cores"


class CpuEstimateBackend(Backend):
    method = "cpu-tdp-estimate"
    kind = "estimated"

    def __init__(self, tdp_w: float | None = None, tdp_origin: str | None = None, *, process: Any = None,
                 logical_cpus: int | None = None, physical_cores: int | None = None):
        import psutil

        cfg = load_energy_data("power_defaults")["cpu_estimate"]
        self.band = parse_band(cfg["band"])
        self.band_source = cfg["band_source"]
        # default: os.times() for this process (one syscall, children included, no /proc parsing)
        self.process = process
        self.logical_cpus = logical_cpus or psutil.cpu_count(logical=True) or 1
        physical = physical_cores or psutil.cpu_count(logical=False) or self.logical_cpus
        if tdp_w is None:
            self.tdp_w, self.tdp_origin = default_tdp(physical)
        else:
            if not math.isfinite(tdp_w) or tdp_w <= 0:
                raise MeterError(f"TDP must be a finite number > 0 W, got {tdp_w}")
            self.tdp_w, self.tdp_origin = float(tdp_w), tdp_origin or "caller (origin not given)"
        self._last_cpu_time_s = 0.0
        super().__init__([Domain(key="cpu:process-share", hw_class="cpu")])

    def _cpu_time_s(self) -> float:
        if self.process is None:
            t = os.times()
            return t.user + t.system + t.children_user + t.children_system
        t = self.process.cpu_times()  # a psutil.Process (or a fake) for another process
        return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)

    def read(self) -> Snapshot:
        self._last_cpu_time_s = self._cpu_time_s()
        return {"cpu:process-share": self._last_cpu_time_s * self.tdp_w / self.logical_cpus}

    def extra_state(self) -> Any:
        return self._last_cpu_time_s  # taken by the read() just before: one syscall per edge

    def window_details(self, begin: Any, end: Any) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if end - begin <= 0:
            extra["_anomalies"] = [f"process CPU time did not advance (resolution {_cpu_time_resolution_s():g} s); "
                                   "window too short for the CPU estimate"]
        return {**extra, "tdp_w": self.tdp_w, "tdp_origin": self.tdp_origin, "logical_cpus": self.logical_cpus,
                "process_cpu_time_s": end - begin,
                "formula": ("process CPU seconds x TDP / logical CPUs (CodeCarbon process mode); "
                            "idle power not attributed"),
                "band_source": self.band_source}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tdp_w": self.tdp_w, "tdp_origin": self.tdp_origin}


def estimate_inference_energy_j(latency_s: float, idle_w: float, max_w: float,
                                utilisation: float) -> tuple[float, tuple[float, float]]:
    """Energy of one inference in J, estimated as
    ``latency_s x (idle_w + utilisation x (max_w - idle_w))`` -- a linear power model between
    the device's idle power and its TDP/max power (W), at ``utilisation`` in [0, 1].

    Returns ``(energy_j, band)`` where ``band`` is the relative (low, high) error carried by
    TDP-based estimates (CodeCarbon's -60 %/+190 % against RAPL; power_defaults.yaml). This is an
    estimate, not a measurement: label it so wherever it is shown. Energy *above idle* (what one
    extra inference costs on an always-on box) is ``latency_s x utilisation x (max_w - idle_w)``.
    """
    for label, v in (("latency_s", latency_s), ("idle_w", idle_w), ("max_w", max_w), ("utilisation", utilisation)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise MeterError(f"{label} must be a finite number >= 0, got {v!r}")
    if utilisation > 1:
        raise MeterError(f"utilisation must be in [0, 1], got {utilisation}")
    if max_w < idle_w:
        raise MeterError(f"max_w ({max_w} W) is below idle_w ({idle_w} W)")
    band = parse_band(load_energy_data("power_defaults")["cpu_estimate"]["band"])
    assert band is not None
    return latency_s * (idle_w + utilisation * (max_w - idle_w)), band
