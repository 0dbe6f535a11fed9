"""Grid intensity, CO2 arithmetic, and training_carbon.json / emissions.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import tomllib

from hackforge_edge.energy.accounting import EMISSIONS_COLUMNS, PhaseLog, write_training_carbon
from hackforge_edge.energy.carbon import co2_kg, regions, resolve_grid
from hackforge_edge.energy.meter import Measurement
from hackforge_edge.errors import MeterError

REQUIRED_REGIONS = {"FRA", "DEU", "GBR", "USA", "SWE", "NOR", "CHE", "POL", "IND", "CHN", "CAN", "BRA",
                    "JPN", "AUS", "EU27", "WORLD"}

# The columns CodeCarbon writes (mlco2/codecarbon codecarbon/output_methods/emissions_data.py).
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "cpu_power", "gpu_power",
    "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "water_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model",
    "longitude", "latitude", "ram_total_size", "tracking_mode", "on_cloud", "pue", "wue",
]


def _m(name, joules, kind="measured", method="rapl", cls="cpu", band=None, **details):
    return Measurement(name=name, duration_s=10.0, energy_j={f"{cls}:0": joules}, energy_j_total=joules,
                       avg_power_w=joules / 10.0, method=method, kind=kind, band=band,
                       details={"domains": {f"{cls}:0": {"class": cls, "in_total": True}}, **details})


def test_co2_arithmetic():
    grid = resolve_grid("FRA", pue=1.5)
    assert co2_kg(2.0, grid) == pytest.approx(2.0 * 1.5 * 56 / 1000)


def test_default_world_lifecycle_it_energy_only():
    g = resolve_grid()
    assert (g.region, g.intensity_g_per_kwh, g.basis, g.year) == ("WORLD", 481.0, "lifecycle", 2023)
    assert "Ember" in g.source
    assert g.pue == 1.0 and "IT energy only" in g.pue_note


def test_explicit_intensity_overrides_and_says_so():
    g = resolve_grid(grid_intensity_g_per_kwh=56)
    assert g.intensity_g_per_kwh == 56.0 and g.basis == "unspecified" and "user-supplied" in g.source


def test_region_by_name_and_case():
    assert resolve_grid("france").region == "FRA"
    assert resolve_grid("deu").intensity_g_per_kwh == 381.0


def test_unknown_region_lists_close_matches():
    with pytest.raises(MeterError, match=r"did you mean .*FRA \(France\)"):
        resolve_grid("FR")
    with pytest.raises(MeterError, match=r"DEU \(Germany\)"):
        resolve_grid("Germny")


@pytest.mark.parametrize("kwargs", [
    {"grid_intensity_g_per_kwh": -1}, {"grid_intensity_g_per_kwh": 2500},
    {"grid_intensity_g_per_kwh": float("nan")}, {"pue": 0.9}, {"pue": 3.5}, {"pue": "x"},
])
def test_bad_grid_inputs(kwargs):
    with pytest.raises(MeterError):
        resolve_grid(**kwargs)


def test_negative_energy_rejected():
    with pytest.raises(MeterError):
        co2_kg(-1.0, resolve_grid())


def test_table_is_dated_and_sourced_and_shipped():
    table = regions()
    assert REQUIRED_REGIONS <= set(table)
    for code, row in table.items():
        assert row["basis"] in ("lifecycle", "combustion"), code
        assert isinstance(row["year"], int) and row["source"], code
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "energy/*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["hackforge_edge"]


def test_training_carbon_json_and_emissions_csv(tmp_path):
    log = PhaseLog()
    log.cache_hit("source_pretrain", note="ImageNet weights from cache")
    log.add(_m("target_transfer", 3.6e6, kind="estimated", method="cpu-tdp-estimate", band=(-0.6, 1.9),
               tdp_w=65.0, tdp_origin="profile local"))
    log.add(_m("export", 3.6e5, cls="gpu", method="nvml-energy-counter", band=(-0.05, 0.05)))
    grid = resolve_grid("DEU")
    doc = write_training_carbon(tmp_path, log, grid, extra={"experiment_id": "exp-1"})
    on_disk = json.loads((tmp_path / "training_carbon.json").read_text())
    assert on_disk["kind"] == doc.kind == "mixed"
    assert [p["phase"] for p in on_disk["phases"]] == ["source_pretrain", "target_transfer", "export"]
    cache = on_disk["phases"][0]
    assert cache["kind"] == "cache-hit" and cache["duration_s"] == 0.0
    transfer = on_disk["phases"][1]
    assert transfer["energy_kwh"] == pytest.approx(1.0)
    assert transfer["co2_kg"] == pytest.approx(0.381)
    assert transfer["band"] == [-0.6, 1.9] and transfer["tdp_origin"] == "profile local"
    assert on_disk["tdp_source"] == [{"tdp_w": 65.0, "origin": "profile local"}]
    assert on_disk["totals"]["energy_kwh"] == pytest.approx(1.1)
    assert on_disk["totals"]["co2_kg"] == pytest.approx(1.1 * 0.381)
    assert on_disk["grid"]["region"] == "DEU" and on_disk["grid"]["basis"] == "lifecycle"

    with open(tmp_path / "emissions.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == list(EMISSIONS_COLUMNS) == CODECARBON_COLUMNS
    row = rows[0]
    assert float(row["energy_consumed"]) == pytest.approx(1.1)
    assert float(row["cpu_energy"]) == pytest.approx(1.0)
    assert float(row["gpu_energy"]) == pytest.approx(0.1)
    assert row["ram_energy"] == ""  # not measured: empty, never 0
    assert float(row["emissions"]) == pytest.approx(1.1 * 0.381)
    assert row["country_iso_code"] == "DEU" and row["experiment_id"] == "exp-1"


def test_overall_kind_measured_only_if_every_phase_measured(tmp_path):
    grid = resolve_grid()
    doc = write_training_carbon(tmp_path, [_m("a", 1.0), _m("b", 2.0)], grid)
    assert doc.kind == "measured"
    doc = write_training_carbon(tmp_path, [_m("a", 1.0, kind="estimated")], grid)
    assert doc.kind == "estimated"


def test_unreadable_phase_makes_totals_a_lower_bound(tmp_path):
    broken = Measurement("export", 5.0, {}, None, None, "nvml-energy-counter", "measured", None,
                         {"anomalies": ["gpu:0: counter went backwards"]})
    doc = write_training_carbon(tmp_path, [_m("target_transfer", 7.2e6), broken], resolve_grid())
    assert doc.phases[1].energy_kwh is None and doc.phases[1].co2_kg is None
    assert doc.totals.complete is False and doc.totals.incomplete_phases == ["export"]
    assert doc.totals.energy_kwh == pytest.approx(2.0)
    # what was written reads back as the same typed document
    from hackforge_edge.energy.artifact import TrainingCarbon
    assert TrainingCarbon.read(tmp_path) == doc


def test_phase_log_rejects_duplicates_and_meters_blocks():
    from test_meter import CounterBackend

    from hackforge_edge.energy.meter import Meter

    b = CounterBackend()
    log = PhaseLog(Meter([b]))
    with log.phase("validation"):
        b.value_j = 4.0
    assert log.measurements[0].energy_j_total == pytest.approx(4.0)
    with pytest.raises(MeterError):
        log.add(log.measurements[0])
