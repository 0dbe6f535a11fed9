"""Energy sources: the abstract :class:`Backend` (cumulative joules per domain), the power
poller that turns sensors into counters, and the package's data files.

Each vendor module (``nvml``, ``rapl``, ``jetson``, ``estimate``) subclasses :class:`Backend`
here; :mod:`hackforge_edge.energy.meter` combines them into windows and picks them in
``make_meter``. Nothing here imports a vendor library.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from hackforge_edge.energy.measurement import Band
from hackforge_edge.errors import MeterError


@lru_cache(maxsize=None)
def load_energy_data(name: str) -> dict:
    """Parsed YAML data file shipped in this package (``grid_intensity``, ``power_defaults``)."""
    from importlib import resources

    import yaml

    text = resources.files("hackforge_edge.energy").joinpath(f"{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def parse_band(value: Any) -> Band | None:
    return None if value is None else (float(value[0]), float(value[1]))


class BackendUnavailable(Exception):
    """Raised by a backend constructor/probe when it cannot read on this machine (with why)."""


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

    def start(self) -> None:  # noqa: B027 - optional hook, a no-op for counter backends
        """Called when the first window over this backend opens (polling backends start here)."""

    def stop(self) -> None:  # noqa: B027 - optional hook
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
