"""Training-side carbon accounting: per-phase Measurements -> training_carbon.json + emissions.csv.

Phases (in pipeline order): source_pretrain (or a cache hit: zero duration, kind "cache-hit"),
target_transfer, export, validation, profiling. ``emissions.csv`` uses CodeCarbon's column names
and units (kWh, kg, W, s) so existing dashboards read it; columns we do not measure are left
empty rather than written as 0.
"""

from __future__ import annotations

import csv
import io
import os
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from hackforge_edge.bundle import atomic_write_text, utc_now
from hackforge_edge.energy.artifact import TrainingCarbon
from hackforge_edge.energy.carbon import GridSpec, co2_kg
from hackforge_edge.energy.meter import J_PER_KWH, Measurement, Meter, cache_hit, combine_bands
from hackforge_edge.errors import MeterError

TRAINING_CARBON = TrainingCarbon.FILENAME
EMISSIONS_CSV = "emissions.csv"
PHASES = ("source_pretrain", "target_transfer", "export", "validation", "profiling")

# CodeCarbon's output columns, in order: codecarbon/output_methods/emissions_data.py
# (mlco2/codecarbon, EmissionsData, commit 0999d9c). Units: duration s, emissions kg CO2e,
# emissions_rate kg/s, *_power W, *_energy and energy_consumed kWh, ram_total_size GB.
EMISSIONS_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_utilization_percent", "ram_utilization_percent", "ram_used_gb",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy",
    "energy_consumed", "water_consumed", "country_name", "country_iso_code", "region",
    "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version", "cpu_count",
    "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude", "ram_total_size",
    "tracking_mode", "on_cloud", "pue", "wue",
)


class PhaseLog:
    """Measurements per pipeline phase, in the order they happened."""

    def __init__(self, meter: Meter | None = None):
        self.meter = meter
        self.measurements: list[Measurement] = []

    def add(self, measurement: Measurement) -> Measurement:
        if any(m.name == measurement.name for m in self.measurements):
            raise MeterError(f"phase {measurement.name!r} recorded twice")
        self.measurements.append(measurement)
        return measurement

    def cache_hit(self, phase: str = "source_pretrain", *, note: str = "") -> Measurement:
        """Record a phase skipped because its result came from cache (0 s, kind "cache-hit")."""
        return self.add(cache_hit(phase, note=note))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Meter the block as phase ``name`` (needs a meter); recorded even if the block raises."""
        if self.meter is None:
            raise MeterError("PhaseLog.phase needs a meter (PhaseLog(meter))")
        w = None
        try:
            with self.meter.window(name) as w:
                yield
        finally:
            if w is not None and w.measurement is not None:
                self.add(w.measurement)

    def __iter__(self):
        return iter(self.measurements)

    def __len__(self) -> int:
        return len(self.measurements)


def _phase_entry(m: Measurement, grid: GridSpec) -> dict[str, Any]:
    kwh = m.energy_kwh
    entry: dict[str, Any] = {
        "phase": m.name, "duration_s": m.duration_s, "energy_j": m.energy_j_total, "energy_kwh": kwh,
        "avg_power_w": m.avg_power_w, "method": m.method, "kind": m.kind,
        "band": list(m.band) if m.band else None,
        "co2_kg": co2_kg(kwh, grid) if kwh is not None else None,
        "energy_j_by_domain": dict(m.energy_j),
    }
    for k in ("tdp_w", "tdp_origin", "samples", "incomplete", "unread_domains", "note"):
        if k in m.details:
            entry[k] = m.details[k]
    if m.details.get("anomalies"):
        entry["anomalies"] = list(m.details["anomalies"])
    return entry


def overall_kind(measurements: Iterable[Measurement]) -> str:
    """"measured" only if every (non-cache-hit) phase was measured; else "estimated" or "mixed"."""
    kinds = {m.kind for m in measurements if m.kind != "cache-hit"}
    if not kinds:
        return "cache-hit"
    if kinds == {"measured"}:
        return "measured"
    if kinds == {"estimated"}:
        return "estimated"
    return "mixed"


def training_carbon(measurements: Iterable[Measurement], grid: GridSpec, *,
                    extra: dict | None = None) -> TrainingCarbon:
    """The training_carbon.json document (see :func:`write_training_carbon`); ``extra`` sets
    the optional :class:`TrainingCarbon` fields (tdp_w, source_pretrain_one_off, ...)."""
    ms = list(measurements)
    phases = [_phase_entry(m, grid) for m in ms]
    known = [m for m in ms if m.energy_j_total is not None]
    total_j = sum(m.energy_j_total for m in known)  # type: ignore[misc]
    incomplete = [m.name for m in ms if m.energy_j_total is None or m.details.get("incomplete")]
    tdp = {(m.details["tdp_w"], m.details.get("tdp_origin")) for m in ms if "tdp_w" in m.details}
    doc: dict[str, Any] = {
        "written_at": utc_now(),
        "kind": overall_kind(ms),
        "methods": sorted({m.method for m in ms if m.kind != "cache-hit"}),
        "tdp_source": [{"tdp_w": w, "origin": o} for w, o in sorted(tdp, key=str)] or None,
        "phases": phases,
        "totals": {
            "duration_s": sum(m.duration_s for m in ms),
            "energy_j": total_j,
            "energy_kwh": total_j / J_PER_KWH,
            "co2_kg": co2_kg(total_j / J_PER_KWH, grid),
            "band": (lambda b: list(b) if b else None)(
                combine_bands([(m.energy_j_total, m.band) for m in known if m.kind != "cache-hit"])),
            "complete": not incomplete,
            "incomplete_phases": incomplete,
        },
        "grid": grid.to_dict(),
        "formula": "co2_kg = energy_kwh x pue x intensity_g_per_kwh / 1000",
    }
    if incomplete:
        doc["totals"]["note"] = "some phases could not be (fully) read: totals are a lower bound"
    return TrainingCarbon(**doc, **(extra or {}))


def emissions_row(measurements: Iterable[Measurement], grid: GridSpec, *, project_name: str = "hackforge-edge",
                  run_id: str = "", experiment_id: str = "", timestamp: str | None = None) -> dict[str, Any]:
    """One CodeCarbon-style row for the whole run (CodeCarbon writes one row per tracker run)."""
    ms = [m for m in measurements if m.kind != "cache-hit"]
    duration = sum(m.duration_s for m in ms)
    by_class: dict[str, float] = {}
    for m in ms:
        for cls, j in m.energy_by_class_j().items():
            by_class[cls] = by_class.get(cls, 0.0) + j
    total_j = sum(m.energy_j_total or 0.0 for m in ms)
    kwh = total_j / J_PER_KWH
    emissions = co2_kg(kwh, grid)

    def kwh_of(cls: str) -> float | str:
        return by_class[cls] / J_PER_KWH if cls in by_class else ""

    def w_of(cls: str) -> float | str:
        return by_class[cls] / duration if cls in by_class and duration > 0 else ""

    cpu_model = platform.processor() or platform.machine()
    methods = {m.method for m in ms}
    return {
        "timestamp": timestamp or utc_now(), "project_name": project_name, "run_id": run_id,
        "experiment_id": experiment_id, "duration": duration, "emissions": emissions,
        "emissions_rate": emissions / duration if duration > 0 else "",
        "cpu_utilization_percent": "", "ram_utilization_percent": "", "ram_used_gb": "",
        "cpu_power": w_of("cpu"), "gpu_power": w_of("gpu"), "ram_power": w_of("ram"),
        "cpu_energy": kwh_of("cpu"), "gpu_energy": kwh_of("gpu"), "ram_energy": kwh_of("ram"),
        "energy_consumed": kwh, "water_consumed": "",
        "country_name": grid.country_name, "country_iso_code": grid.region if len(grid.region) == 3 else "",
        "region": grid.region, "cloud_provider": "", "cloud_region": "",
        "os": platform.platform(), "python_version": platform.python_version(), "codecarbon_version": "",
        "cpu_count": os.cpu_count() or "", "cpu_model": cpu_model,
        "gpu_count": len({d for m in ms for d, i in m.details.get("domains", {}).items() if i.get("class") == "gpu"}),
        "gpu_model": "", "longitude": "", "latitude": "", "ram_total_size": _ram_gb(),
        "tracking_mode": "process" if "cpu-tdp-estimate" in methods and len(methods) == 1 else "machine",
        "on_cloud": "N", "pue": grid.pue, "wue": "",
    }


def _ram_gb() -> float | str:
    try:
        import psutil
    except ImportError:
        return ""
    return psutil.virtual_memory().total / 1e9


def emissions_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EMISSIONS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in EMISSIONS_COLUMNS})
    return buf.getvalue()


def write_training_carbon(run_dir: str | os.PathLike, measurements: Iterable[Measurement] | PhaseLog,
                          grid: GridSpec, *, extra: dict | None = None, run_id: str = "") -> TrainingCarbon:
    """Write ``training_carbon.json`` and ``emissions.csv`` into ``run_dir`` atomically.

    training_carbon.json: per phase duration (s), energy (J, kWh), method, kind, band, CO2 (kg);
    totals; the grid spec; a top-level ``kind`` ("measured" only if every phase was measured,
    else "estimated" or "mixed") and the TDP source of any estimate. Returns the typed document.
    """
    ms = list(measurements)
    if not ms:
        raise MeterError("no phases to account (the meter recorded nothing)")
    run_dir = Path(run_dir)
    doc = training_carbon(ms, grid, extra=extra)
    doc.write(run_dir)
    row = emissions_row(ms, grid, run_id=run_id or run_dir.name,
                        experiment_id=str((extra or {}).get("experiment_id", "")))
    atomic_write_text(run_dir / EMISSIONS_CSV, emissions_csv([row]))
    return doc


__all__ = ["PhaseLog", "write_training_carbon", "training_carbon", "emissions_row", "EMISSIONS_COLUMNS",
           "PHASES", "overall_kind", "TRAINING_CARBON", "EMISSIONS_CSV"]
