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
import math
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping

from hackforge_edge.errors import MeterError

log = logging.getLogger(__name__)

J_PER_KWH = 3.6e6

Band = tuple[float, float]


@lru_cache(maxsize=None)
def load_energy_data(name: str) -> dict:
    """Parsed YAML data file shipped in this package (``grid_intensity``, ``power_defaults``)."""
    from importlib import resources

    import yaml

    text = resources.files("hackforge_edge.energy").joinpath(f"{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _band(value: Any) -> Band | None:
    return None if value is None else (float(value[0]), float(value[1]))


class BackendUnavailable(Exception):
    """Raised by a backend constructor/probe when it cannot read on this machine (with why)."""


@dataclass(frozen=True)
class Measurement:
    """One closed window.

    ``energy_j`` maps each domain that was read successfully to its joules over the window.
    ``energy_j_total`` is the window's energy in J: the sum over domains, except that sub-rails
    of a whole-module rail (Jetson VDD_IN) are not added again. It is ``None`` when no domain
    could be read (never a silent 0). ``band`` is the (low, high) relative error, e.g.
    (-0.6, 1.9) means the true value lies within [0.4x, 2.9x]; ``None`` means not quantified.
    ``kind`` is "measured", "estimated", "mixed" (both kinds of domain) or "cache-hit".
    ``details`` holds the inputs (TDP and its origin, sample counts, per-domain method/kind)
    and ``details["anomalies"]`` anything that went wrong inside the window.
    """

    name: str
    duration_s: float
    energy_j: Mapping[str, float]
    energy_j_total: float | None
    avg_power_w: float | None
    method: str
    kind: str
    band: Band | None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy_j_total is None else self.energy_j_total / J_PER_KWH

    @property
    def anomalies(self) -> list[str]:
        return list(self.details.get("anomalies", []))

    def energy_by_class_j(self) -> dict[str, float]:
        """Joules per hardware class ("cpu", "gpu", "ram", "module") from the read domains."""
        out: dict[str, float] = {}
        domains = self.details.get("domains", {})
        for dom, joules in self.energy_j.items():
            info = domains.get(dom, {})
            if info.get("in_total", True):
                cls = info.get("class", "other")
                out[cls] = out.get(cls, 0.0) + joules
        return out

    def minus_idle(self, idle_w: float, *, origin: str = "caller") -> "Measurement":
        """This window with ``idle_w x duration_s`` removed from the total (per-domain values are
        left raw). A result below zero is clamped at 0 and recorded as an anomaly."""
        if not math.isfinite(idle_w) or idle_w < 0:
            raise MeterError(f"idle power must be a finite number >= 0 W, got {idle_w}")
        if self.energy_j_total is None:
            return self
        idle_j = idle_w * self.duration_s
        net = self.energy_j_total - idle_j
        anomalies = self.anomalies
        if net < 0:
            anomalies.append(f"window energy {self.energy_j_total:.3g} J below idle baseline "
                             f"{idle_j:.3g} J (idle estimate too high or window too short); clamped at 0")
            net = 0.0
        details = {**self.details, "idle_subtracted_w": idle_w, "idle_origin": origin,
                   "idle_subtracted_j": idle_j, "energy_j_total_before_idle": self.energy_j_total,
                   "anomalies": anomalies}
        avg = net / self.duration_s if self.duration_s > 0 else None
        return replace(self, energy_j_total=net, avg_power_w=avg, details=details)

    def per_item(self, n_items: int) -> "Measurement":
        """Energy per item (inference, sample) when ``n_items`` ran inside the window."""
        if n_items <= 0:
            raise MeterError(f"n_items must be > 0, got {n_items}")
        total = None if self.energy_j_total is None else self.energy_j_total / n_items
        details = {**self.details, "items": n_items, "per_item": True}
        return replace(self, name=f"{self.name}/item", duration_s=self.duration_s / n_items,
                       energy_j={k: v / n_items for k, v in self.energy_j.items()},
                       energy_j_total=total, details=details)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "duration_s": self.duration_s, "energy_j": dict(self.energy_j),
                "energy_j_total": self.energy_j_total, "energy_kwh": self.energy_kwh,
                "avg_power_w": self.avg_power_w, "method": self.method, "kind": self.kind,
                "band": list(self.band) if self.band else None, "details": dict(self.details)}


def cache_hit(name: str, *, note: str = "") -> Measurement:
    """A zero-duration phase whose work was skipped (e.g. pretrained weights from cache): 0 J
    spent in this run, labelled kind "cache-hit" so nobody mistakes it for a measured zero."""
    return Measurement(name=name, duration_s=0.0, energy_j={}, energy_j_total=0.0, avg_power_w=None,
                       method="cache-hit", kind="cache-hit", band=None,
                       details={"note": note or "work reused from cache; its original energy is not counted"})


# --------------------------------------------------------------------------------------------
# Backends


Snapshot = dict[str, "float | BaseException"]


@dataclass(frozen=True)
class Domain:
    """One readable source of energy inside a backend."""

    key: str
    hw_class: str  # "cpu" | "gpu" | "ram" | "module"
    in_total: bool = True  # False for sub-rails already contained in another domain
    wrap_j: float | None = None  # counter range: a decrease means one wrap-around


class Backend(ABC):
    """A source of cumulative joules per domain.

    Subclasses set ``method``, ``kind`` and ``band`` and implement :meth:`read`. ``read``
    returns, for each domain, cumulative joules since an arbitrary origin -- or the exception
    that prevented reading it (the meter turns that into an anomaly, never a zero).
    """

    method: str = "?"
    kind: str = "measured"
    band: Band | None = None
    band_source: str = ""

    def __init__(self, domains: list[Domain]):
        if not domains:
            raise BackendUnavailable("no domains")
        self.domains = {d.key: d for d in domains}

    @abstractmethod
    def read(self) -> Snapshot:
        """Cumulative joules per domain key (or the exception met reading it)."""

    def start(self) -> None:
        """Called when the first window over this backend opens (polling backends start here)."""

    def stop(self) -> None:
        """Called when the last open window closes."""

    def window_details(self, begin: Any, end: Any) -> dict[str, Any]:
        """Extra per-window details (sample counts, TDP, ...) from the two ``extra`` states."""
        return {}

    def extra_state(self) -> Any:
        """State taken right after each edge's :meth:`read` (sample counters, CPU seconds)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "kind": self.kind, "band": self.band,
                "band_source": self.band_source}


class PowerPoller:
    """Samples instantaneous power per rail on a daemon thread and integrates it (trapezoid)
    into cumulative joules, so polling backends look like counters to the meter.

    ``sample`` returns {rail: watts}; a rail missing from the result, or an exception for the
    whole call, marks the rail lost from that moment (recorded, and reads return the error).
    """

    def __init__(self, sample: Callable[[], Mapping[str, "float | BaseException"]],
                 interval_s: float, name: str = "power-poller",
                 clock: Callable[[], float] = time.perf_counter):
        if interval_s <= 0:
            raise MeterError(f"polling interval must be > 0 s, got {interval_s}")
        self._sample = sample
        self._clock = clock
        self.interval_s = interval_s
        self._name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_j: dict[str, float] = {}
        self._last: dict[str, tuple[float, float]] = {}  # rail -> (t, watts)
        self._lost: dict[str, BaseException] = {}
        self.samples = 0
        self.anomalies: list[str] = []

    def sample_now(self) -> None:
        """Take one sample synchronously (window edges call this so short windows have data)."""
        t = self._clock()
        try:
            values = dict(self._sample())
        except (OSError, ValueError) as exc:  # the whole sensor went away
            values = {rail: exc for rail in self._last}
        with self._lock:
            self.samples += 1
            for rail, watts in values.items():
                if rail in self._lost:
                    continue
                if isinstance(watts, BaseException):
                    self._lost[rail] = watts
                    self.anomalies.append(f"{rail}: sensor unreadable after {self.samples} samples "
                                          f"({type(watts).__name__}: {watts})")
                    continue
                prev = self._last.get(rail)
                if prev is not None:
                    self._energy_j[rail] = self._energy_j.get(rail, 0.0) + 0.5 * (watts + prev[1]) * (t - prev[0])
                else:
                    self._energy_j.setdefault(rail, 0.0)
                self._last[rail] = (t, watts)

    def cumulative(self) -> Snapshot:
        with self._lock:
            out: Snapshot = dict(self._energy_j)
            out.update(self._lost)
            return out

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_now()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        # the integral restarts at the next start(): a gap between windows is not integrated
        with self._lock:
            self._last.clear()


class PollingBackend(Backend):
    """Base for backends that poll power (W) and integrate it on a :class:`PowerPoller`."""

    def __init__(self, domains: list[Domain], interval_s: float):
        super().__init__(domains)
        self.poller = PowerPoller(self.sample_power_w, interval_s, name=f"{self.method}-poller")

    @abstractmethod
    def sample_power_w(self) -> Mapping[str, "float | BaseException"]:
        """Instantaneous power per domain key in W."""

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def read(self) -> Snapshot:
        self.poller.sample_now()
        return self.poller.cumulative()

    def extra_state(self) -> Any:
        return (self.poller.samples, len(self.poller.anomalies))

    def window_details(self, begin: Any, end: Any) -> dict[str, Any]:
        return {"samples": end[0] - begin[0], "poll_interval_s": self.poller.interval_s,
                "_anomalies": self.poller.anomalies[begin[1]:end[1]]}


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
        for b, start, end, x0, x1 in zip(self.backends, state.snapshots, ends, state.extras, extras):
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
