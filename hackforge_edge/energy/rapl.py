"""RAPL energy counters from sysfs (Intel, and AMD through the same powercap interface).

Reads ``<root>/sys/class/powercap/intel-rapl:N/energy_uj`` (package N, in µJ) and the DRAM
sub-domain ``intel-rapl:N:M`` whose ``name`` is "dram" where present (DRAM is outside the
package domain, so it is added; core/uncore sub-domains are inside the package and are not).
``intel-rapl-mmio`` mirrors the package counter and ``psys`` covers the whole platform, so
both are ignored to avoid double counting. Counters wrap at ``max_energy_range_uj``.

Since CVE-2020-8694 ``energy_uj`` is usually readable by root only; most VMs have no powercap.
"""

from __future__ import annotations

import re
from pathlib import Path

from hackforge_edge.energy.base import (
    Backend,
    BackendUnavailable,
    Domain,
    Snapshot,
    load_energy_data,
    parse_band,
)

_PACKAGE_DIR = re.compile(r"^intel-rapl:(\d+)$")
_SUB_DIR = re.compile(r"^intel-rapl:(\d+):(\d+)$")


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplBackend(Backend):
    method = "rapl"
    kind = "measured"

    def __init__(self, files: dict[str, Path], domains: list[Domain]):
        super().__init__(domains)
        cfg = load_energy_data("power_defaults")["rapl"]
        self.band = parse_band(cfg["band"])
        self.band_source = cfg["band_source"]
        self.files = files

    @classmethod
    def discover(cls, sysfs_root: str = "/") -> "RaplBackend":
        """Find readable package (and DRAM) counters, or raise BackendUnavailable with why."""
        base = Path(sysfs_root) / "sys" / "class" / "powercap"
        if not base.is_dir():
            raise BackendUnavailable(f"{base} not present (no powercap/RAPL on this machine or VM)")
        zones: list[Path] = []
        for pkg in sorted(base.iterdir()):
            if _PACKAGE_DIR.match(pkg.name):
                zones.append(pkg)
                zones.extend(sorted(p for p in pkg.iterdir() if _SUB_DIR.match(p.name)))
        if not zones:
            raise BackendUnavailable(f"no intel-rapl:N package domains under {base}")
        files: dict[str, Path] = {}
        domains: list[Domain] = []
        denied: list[str] = []
        for zone in zones:
            try:
                name = (zone / "name").read_text().strip()
            except OSError as exc:
                denied.append(f"{zone.name}/name ({type(exc).__name__})")
                continue
            is_pkg = bool(_PACKAGE_DIR.match(zone.name))
            if not is_pkg and name != "dram":
                continue  # core/uncore are inside the package counter
            energy_file = zone / "energy_uj"
            try:
                _read_int(energy_file)
                wrap_uj = _read_int(zone / "max_energy_range_uj")
            except PermissionError:
                denied.append(f"{energy_file.relative_to(base)}")
                continue
            except (OSError, ValueError) as exc:
                denied.append(f"{energy_file.relative_to(base)} ({type(exc).__name__}: {exc})")
                continue
            key = f"rapl:{zone.name.removeprefix('intel-rapl:')}:{name}"
            files[key] = energy_file
            domains.append(Domain(key=key, hw_class="cpu" if is_pkg else "ram", wrap_j=wrap_uj * 1e-6))
        if not any(d.hw_class == "cpu" for d in domains):
            why = ", ".join(denied) if denied else "no package counter"
            raise BackendUnavailable(f"RAPL package counters not readable: {why} "
                                     "(root-only since CVE-2020-8694; e.g. grant read access to energy_uj)")
        return cls(files, domains)

    def read(self) -> Snapshot:
        out: Snapshot = {}
        for key, path in self.files.items():
            try:
                out[key] = _read_int(path) * 1e-6
            except (OSError, ValueError) as exc:
                out[key] = exc
        return out
