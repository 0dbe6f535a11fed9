"""Energy meter: named windows over one or more backends, returning a frozen ``Measurement``.

Usage::

    meter = make_meter("auto")            # best sources available on this machine
    meter.begin("train")
    ...                                   # work
    m = meter.end("train")                # Measurement(energy_j_total=..., method=..., kind=...)

Windows are independent and may nest or overlap (each is a pair of snapshots of cumulative
counters). Every backend exposes cumulative joules per *domain* (a GPU, a RAPL package, a
Jetson rail, this process's CPU share): hardware counters are read directly; power sensors are
polled on a background thread and integrated into a software counter. A backend that cannot
read is skipped with its reason in ``meter.skipped`` and the log -- never reported as 0 J.

Only :mod:`hackforge_edge.energy.nvml` imports ``pynvml``; this module imports nothing heavy.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from hackforge_edge.energy.base import (
    Backend,
    BackendUnavailable,
    Domain,
    PollingBackend,
    PowerPoller,
    Snapshot,
    load_energy_data,
)
from hackforge_edge.energy.measurement import J_PER_KWH, Band, Measurement, cache_hit
from hackforge_edge.errors import MeterError

# names that callers import from here (the meter is the energy package's front door)
__all__ = ["J_PER_KWH", "Backend", "BackendUnavailable", "Band", "DEVICES", "Domain", "Measurement",
           "Meter", "PollingBackend", "PowerPoller", "Snapshot", "WindowResult", "cache_hit",
           "combine_bands", "counter_delta", "load_energy_data", "make_meter"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The meter


@dataclass
class _Open:
    t0: float
    snapshots: list[Snapshot]
    extras: list[Any]


class Meter:
    """Named energy windows over a fixed list of backends (see module docstring).

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called at both edges of every window so
    queued device work is attributed to the right window. ``skipped`` lists
    ``(backend, reason)`` for every source that was tried and could not read.
    """

    def __init__(self, backends: list[Backend], *, skipped: list[tuple[str, str]] | None = None,
                 sync: Callable[[], None] | None = None):
        if not backends:
            raise MeterError("a meter needs at least one backend")
        self.backends = list(backends)
        self.skipped = list(skipped or [])
        self.sync = sync
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()

    @property
    def method(self) -> str:
        return "+".join(b.method for b in self.backends)

    @property
    def kind(self) -> str:
        kinds = {b.kind for b in self.backends}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "kind": self.kind,
                "backends": [b.describe() for b in self.backends],
                "skipped": [{"backend": n, "reason": r} for n, r in self.skipped]}

    def begin(self, name: str) -> None:
        """Open window ``name`` (names must be unique among open windows)."""
        with self._lock:
            if name in self._open:
                raise MeterError(f"energy window {name!r} is already open")
            if not self._open:
                for b in self.backends:
                    b.start()
            self._open[name] = _Open(0.0, [], [])
        if self.sync:
            self.sync()
        state = self._open[name]
        # the window's clock edge is the midpoint of the reads, so read cost is split evenly
        before = time.perf_counter()
        state.snapshots = [b.read() for b in self.backends]
        state.t0 = 0.5 * (before + time.perf_counter())
        state.extras = [b.extra_state() for b in self.backends]

    def end(self, name: str) -> Measurement:
        """Close window ``name`` and return its Measurement."""
        if name not in self._open:
            raise MeterError(f"energy window {name!r} is not open (open: {sorted(self._open) or 'none'})")
        if self.sync:
            self.sync()
        before = time.perf_counter()
        ends = [b.read() for b in self.backends]
        t1 = 0.5 * (before + time.perf_counter())
        extras = [b.extra_state() for b in self.backends]
        with self._lock:
            state = self._open.pop(name)
            if not self._open:
                for b in self.backends:
                    b.stop()
        return self._build(name, t1 - state.t0, state, ends, extras)

    @contextmanager
    def window(self, name: str) -> Iterator["WindowResult"]:
        """``with meter.window("x") as w: ...`` then ``w.measurement``. If the body raises, the
        window is still closed (and its Measurement kept) before the exception propagates."""
        result = WindowResult()
        self.begin(name)
        try:
            yield result
        finally:
            result.measurement = self.end(name)

    def abort_all(self) -> None:
        """Close every open window without results (on an error path), stopping polling threads."""
        with self._lock:
            if self._open:
                self._open.clear()
                for b in self.backends:
                    b.stop()

    def _build(self, name: str, duration_s: float, state: _Open, ends: list[Snapshot],
               extras: list[Any]) -> Measurement:
        energy: dict[str, float] = {}
        domains: dict[str, dict[str, Any]] = {}
        anomalies: list[str] = []
        details: dict[str, Any] = {}
        total = 0.0
        total_read = False
        band_weighted: list[tuple[float, Band | None]] = []
        kinds_read: set[str] = set()
        methods_read: list[str] = []
        for b, start, end, x0, x1 in zip(self.backends, state.snapshots, ends, state.extras, extras, strict=True):
            bdetails = b.window_details(x0, x1)
            anomalies.extend(bdetails.pop("_anomalies", []))
            details.update(bdetails)
            for key, dom in b.domains.items():
                j, problem = counter_delta(key, start.get(key), end.get(key), dom.wrap_j)
                info = {"class": dom.hw_class, "method": b.method, "kind": b.kind, "in_total": dom.in_total}
                if problem:
                    anomalies.append(problem)
                if j is None:
                    info["read"] = False
                    domains[key] = info
                    continue
                if problem and "wrapped" in problem:
                    info["wrapped"] = True
                energy[key] = j
                domains[key] = info
                if dom.in_total:
                    total += j
                    total_read = True
                    band_weighted.append((j, b.band))
                    kinds_read.add(b.kind)
                    if b.method not in methods_read:
                        methods_read.append(b.method)
        unread = [k for k, v in domains.items() if v.get("read") is False and v["in_total"]]
        if unread:
            details["incomplete"] = True
            details["unread_domains"] = unread
        details["domains"] = domains
        details["anomalies"] = anomalies
        if self.skipped:
            details["skipped"] = [{"backend": n, "reason": r} for n, r in self.skipped]
        if duration_s < float(load_energy_data("power_defaults")["nvml"]["min_reliable_window_s"]) and \
                any(b.method == "nvml-energy-counter" for b in self.backends):
            anomalies.append(f"window {duration_s:.3f} s is shorter than the NVML counter's reliable "
                             "minimum; run more work per window and divide")
        kind = (kinds_read.pop() if len(kinds_read) == 1 else "mixed") if kinds_read else self.kind
        return Measurement(
            name=name, duration_s=duration_s, energy_j=energy,
            energy_j_total=total if total_read else None,
            avg_power_w=(total / duration_s) if total_read and duration_s > 0 else None,
            method="+".join(methods_read) if methods_read else self.method,
            kind=kind, band=combine_bands(band_weighted), details=details)


class WindowResult:
    """Filled in by :meth:`Meter.window` when the block exits."""

    measurement: Measurement | None = None


def counter_delta(key: str, start: "float | BaseException | None", end: "float | BaseException | None",
                  wrap_j: float | None) -> tuple[float | None, str | None]:
    """Joules between two cumulative readings, and a note when something was off.

    A domain unreadable at either edge gives ``None`` (never 0). A decrease means one
    wrap-around when the counter range is known, else an anomaly (driver reload, reset) and
    ``None`` -- never a negative energy.
    """
    for edge, v in (("start", start), ("end", end)):
        if v is None:
            return None, f"{key}: vanished (no reading at window {edge})"
        if isinstance(v, BaseException):
            return None, f"{key}: unreadable at window {edge} ({type(v).__name__}: {v})"
    assert isinstance(start, float) and isinstance(end, float)
    if end >= start:
        return end - start, None
    if wrap_j:
        return end + wrap_j - start, f"{key}: counter wrapped once (range {wrap_j:.6g} J)"
    return None, f"{key}: counter went backwards ({start:.6g} J -> {end:.6g} J; reset or driver reload); excluded"


def combine_bands(parts: list[tuple[float, Band | None]]) -> Band | None:
    """Energy-weighted relative band over domains; ``None`` when no part has a quantified band
    (parts without one count as exact, which the per-domain details make visible)."""
    if not parts or all(b is None for _, b in parts):
        return None
    total = sum(j for j, _ in parts)
    if total <= 0:
        bands = [b for _, b in parts if b is not None]
        return (min(b[0] for b in bands), max(b[1] for b in bands))
    low = sum(j * (b[0] if b else 0.0) for j, b in parts) / total
    high = sum(j * (b[1] if b else 0.0) for j, b in parts) / total
    return (low, high)


# --------------------------------------------------------------------------------------------
# Factory

DEVICES = ("auto", "cpu", "gpu", "jetson", "estimate")


def make_meter(device: str = "auto", *, tdp_w: float | None = None, tdp_origin: str | None = None,
               sysfs_root: str = "/", nvml: Any = None, sync: Callable[[], None] | None = None,
               poll_interval_s: float | None = None) -> Meter:
    """Build a meter from the best sources available, trying them in order:

    1. Jetson INA3221 rails (whole module; when found, nothing else is added),
    2. NVML per GPU: energy counter, else power polling (``device`` "auto", "gpu", "cuda[:N]"),
    3. CPU: RAPL package/DRAM counters, else the process-share TDP estimate.

    ``device``: "auto", "cpu" (RAPL or estimate), "gpu"/"cuda"/"cuda:N" (NVML + CPU), "jetson",
    "estimate" (CPU estimate only). ``tdp_w``/``tdp_origin`` feed the estimate (else a
    documented per-core default). ``sysfs_root`` and ``nvml`` (a module object) are injectable
    for tests. Every source tried and skipped is logged and listed in ``meter.skipped``.
    """
    from hackforge_edge.energy import estimate, jetson, rapl
    from hackforge_edge.energy import nvml as nvml_mod

    dev = device.lower().strip()
    gpu_index: int | None = None
    if dev.startswith("cuda"):
        try:
            gpu_index = int(dev.split(":", 1)[1]) if ":" in dev else None
        except ValueError:
            raise MeterError(f"bad GPU device {device!r} (expected cuda or cuda:N)") from None
        dev = "gpu"
    if dev not in DEVICES:
        raise MeterError(f"unknown meter device {device!r} (valid: {', '.join(DEVICES)}, cuda:N)")
    skipped: list[tuple[str, str]] = []
    backends: list[Backend] = []

    def _skip(name: str, reason: str) -> None:
        log.info("energy backend %s skipped: %s", name, reason)
        skipped.append((name, reason))

    if dev in ("auto", "jetson"):
        try:
            backends.append(jetson.JetsonBackend.discover(sysfs_root, interval_s=poll_interval_s))
        except BackendUnavailable as exc:
            _skip("jetson-ina3221", str(exc))
        if backends:
            return Meter(backends, skipped=skipped, sync=sync)
        if dev == "jetson":
            raise MeterError(f"no Jetson power rails readable: {skipped[-1][1]}")

    if dev in ("auto", "gpu"):
        gpu_backends, gpu_skipped = nvml_mod.discover(nvml, index=gpu_index, interval_s=poll_interval_s)
        for name, reason in gpu_skipped:
            _skip(name, reason)
        backends.extend(gpu_backends)
        if dev == "gpu" and not gpu_backends:
            raise MeterError(f"no NVIDIA GPU energy source readable: {'; '.join(r for _, r in gpu_skipped)}")

    if dev in ("auto", "gpu", "cpu"):
        try:
            backends.append(rapl.RaplBackend.discover(sysfs_root))
        except BackendUnavailable as exc:
            _skip("rapl", str(exc))
        else:
            return Meter(backends, skipped=skipped, sync=sync)

    backends.append(estimate.CpuEstimateBackend(tdp_w=tdp_w, tdp_origin=tdp_origin))
    return Meter(backends, skipped=skipped, sync=sync)
