"""NVIDIA Jetson on-module power rails (TI INA3221), read from sysfs and integrated over time.

NVML does not report Jetson power. Two sysfs layouts exist:

* JetPack 5/6 (Jetson Linux 34+; mainline ``ina3221`` hwmon driver):
  ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmonK/inN_label`` (rail name),
  ``inN_input`` (bus voltage, mV), ``currN_input`` (current, mA), N = 1..3.
* JetPack 4 (Jetson Linux 32; NVIDIA's ``ina3221x`` IIO driver):
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceK/rail_name_N``,
  ``in_voltageN_input`` (mV), ``in_currentN_input`` (mA), N = 0..2.

Power per rail = mV x mA / 1e6 W, polled on a background thread and integrated. When a rail
carries the whole module input (VDD_IN on Orin Nano/NX, POM_5V_IN on Nano) the total is that
rail and the others are reported as sub-rails; otherwise the total is the sum of all rails.
The on-module sensors do not include the carrier board.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from hackforge_edge.energy.base import (
    BackendUnavailable,
    Domain,
    PollingBackend,
    load_energy_data,
    parse_band,
)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _find_rails(root: Path) -> dict[str, tuple[Path, Path]]:
    """Rail name -> (voltage file mV, current file mA), over both layouts."""
    rails: dict[str, tuple[Path, Path]] = {}
    i2c = root / "sys" / "bus" / "i2c" / "drivers"
    for hwmon in sorted((i2c / "ina3221").glob("*/hwmon/hwmon*")):
        for label in sorted(hwmon.glob("in*_label")):
            n = label.name[2:-len("_label")]
            volt, curr = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
            if volt.is_file() and curr.is_file():  # "sum of shunt" channels have no current file
                rails[label.read_text().strip()] = (volt, curr)
    for iio in sorted((i2c / "ina3221x").glob("*/iio:device*")):
        for label in sorted(iio.glob("rail_name_*")):
            n = label.name.rsplit("_", 1)[1]
            volt, curr = iio / f"in_voltage{n}_input", iio / f"in_current{n}_input"
            if volt.is_file() and curr.is_file():
                rails[label.read_text().strip()] = (volt, curr)
    return rails


class JetsonBackend(PollingBackend):
    method = "jetson-ina3221"
    kind = "measured"

    def __init__(self, rails: dict[str, tuple[Path, Path]], interval_s: float | None = None):
        cfg = load_energy_data("power_defaults")["jetson"]
        self.band = parse_band(cfg["band"])
        self.band_source = cfg["band_source"]
        self.rails = rails
        self.unreadable_rails: list[str] = []
        module_rails = [r for r in cfg["module_input_rails"] if r in rails]
        self.total_rail = module_rails[0] if module_rails else None
        domains = [Domain(key=f"jetson:{r}", hw_class="module",
                          in_total=self.total_rail is None or r == self.total_rail) for r in rails]
        super().__init__(domains, interval_s or float(cfg["poll_interval_s"]))

    @classmethod
    def discover(cls, sysfs_root: str = "/", interval_s: float | None = None) -> "JetsonBackend":
        root = Path(sysfs_root)
        try:
            rails = _find_rails(root)
        except OSError as exc:
            raise BackendUnavailable(f"INA3221 sysfs not readable ({type(exc).__name__}: {exc})") from None
        if not rails:
            raise BackendUnavailable("no INA3221 rails under /sys/bus/i2c/drivers/ina3221{,x} (not a Jetson)")
        backend = cls(rails, interval_s)
        first = backend.sample_power_w()
        bad = {r: v for r, v in first.items() if isinstance(v, BaseException)}
        if len(bad) == len(first):
            why = "; ".join(f"{r}: {type(v).__name__}" for r, v in bad.items())
            raise BackendUnavailable(f"INA3221 rails not readable ({why})")
        if bad:  # keep the readable rails; the others are named in describe()
            good = {r: f for r, f in rails.items() if f"jetson:{r}" not in bad}
            backend = cls(good, interval_s)
            backend.unreadable_rails = sorted(bad)
        return backend

    def sample_power_w(self) -> Mapping[str, "float | BaseException"]:
        out: dict[str, float | BaseException] = {}
        for rail, (volt, curr) in self.rails.items():
            try:
                out[f"jetson:{rail}"] = _read_int(volt) * _read_int(curr) * 1e-6
            except (OSError, ValueError) as exc:
                out[f"jetson:{rail}"] = exc
        return out

    def describe(self) -> dict:
        note = (f"total = {self.total_rail} (module input; other rails are sub-rails)" if self.total_rail
                else "no module input rail found; total = sum of all rails")
        return {**super().describe(), "rails": sorted(self.rails), "total": note,
                "note": "on-module sensors; carrier board not included",
                "unreadable_rails": self.unreadable_rails}
