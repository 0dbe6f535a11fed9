"""NVML backends against a fake NVML module object built here (no GPU, no driver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hackforge_edge.energy import nvml as nvml_backend
from hackforge_edge.energy.meter import Meter, make_meter

NOT_SUPPORTED = 3
GPU_IS_LOST = 15


class FakeNVML:
    """The slice of pynvml the backends use. ``energy_mj``/``power_mw`` per GPU are lists
    consumed one value per call (last value repeats), or None for NotSupported."""

    NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED

    class NVMLError(Exception):
        def __init__(self, value: int):
            self.value = value
            super().__init__(f"NVML error {value}")

    def __init__(self, gpus: list[dict], init_fails: bool = False):
        self.gpus = gpus
        self.init_fails = init_fails

    def nvmlInit(self):
        if self.init_fails:
            raise self.NVMLError(12)  # library not found

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.gpus[h].get("name", "Fake GPU")

    def _next(self, h, key):
        seq = self.gpus[h].get(key)
        if seq is None:
            raise self.NVMLError(NOT_SUPPORTED)
        value = seq.pop(0) if len(seq) > 1 else seq[0]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self._next(h, "energy_mj")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._next(h, "power_mw")


def test_energy_counter_window(tmp_path):
    fake = FakeNVML([{"name": "Tesla T4", "energy_mj": [1_000, 1_000, 51_000], "power_mw": [70_000]}])
    backends, skipped = nvml_backend.discover(fake)
    assert [b.method for b in backends] == ["nvml-energy-counter"]
    meter = Meter(backends)
    meter.begin("w")
    m = meter.end("w")
    assert m.energy_j == {"gpu:0": pytest.approx(50.0)}  # (51000 - 1000) mJ
    assert m.kind == "measured" and m.method == "nvml-energy-counter"
    assert m.details["domains"]["gpu:0"]["class"] == "gpu"
    assert m.band == (-0.05, 0.05)
    assert any("shorter than the NVML counter" in a for a in m.anomalies)  # sub-second window noted


def test_not_supported_counter_falls_back_to_power_polling():
    fake = FakeNVML([{"name": "Tesla K80", "energy_mj": None, "power_mw": [60_000]}])
    backends, skipped = nvml_backend.discover(fake, interval_s=10.0)
    assert [b.method for b in backends] == ["nvml-power-polling"]
    assert any("NotSupported" in reason for _, reason in skipped)
    meter = Meter(backends)
    meter.begin("w")
    backends[0].poller.sample_now()
    m = meter.end("w")
    assert m.method == "nvml-power-polling"
    assert m.details["samples"] >= 2
    assert m.energy_j_total is not None and m.energy_j_total >= 0


def test_gpu_with_no_power_reading_is_skipped():
    fake = FakeNVML([{"energy_mj": None, "power_mw": None}])
    backends, skipped = nvml_backend.discover(fake)
    assert backends == []
    assert [n for n, _ in skipped] == ["nvml-energy-counter:gpu0", "nvml-power-polling:gpu0"]


def test_nvml_init_failure_is_skipped_with_reason():
    backends, skipped = nvml_backend.discover(FakeNVML([], init_fails=True))
    assert backends == [] and skipped[0][0] == "nvml" and "NVML unavailable" in skipped[0][1]


def test_counter_going_backwards_is_anomaly_not_negative():
    fake = FakeNVML([{"energy_mj": [9_000, 9_000, 2_000]}])  # driver reload between edges
    meter = Meter(nvml_backend.discover(fake)[0])
    meter.begin("w")
    m = meter.end("w")
    assert "gpu:0" not in m.energy_j
    assert m.energy_j_total is None  # unknown, never 0 and never negative
    assert any("went backwards" in a for a in m.anomalies)


def test_gpu_lost_mid_window_is_recorded():
    fake = FakeNVML([{"energy_mj": [1_000, 1_000]}, {"energy_mj": [5_000, 5_000, 8_000]}])
    meter = Meter(nvml_backend.discover(fake)[0])
    meter.begin("w")
    fake.gpus[0]["energy_mj"] = [FakeNVML.NVMLError(GPU_IS_LOST)]
    m = meter.end("w")
    assert m.energy_j == {"gpu:1": pytest.approx(3.0)}
    assert m.details["unread_domains"] == ["gpu:0"]
    assert any("gpu:0" in a and "unreadable" in a for a in m.anomalies)


def test_factory_gpu_adds_cpu_component(tmp_path):
    fake = FakeNVML([{"energy_mj": [0, 0, 1_000]}])
    meter = make_meter("cuda:0", sysfs_root=str(tmp_path), nvml=fake, tdp_w=65.0, tdp_origin="profile local")
    assert meter.method == "nvml-energy-counter+cpu-tdp-estimate"
    assert meter.kind == "mixed"


def test_only_nvml_module_imports_pynvml():
    energy_dir = Path(nvml_backend.__file__).parent
    offenders = [p.name for p in energy_dir.glob("*.py")
                 if p.name != "nvml.py" and "import pynvml" in p.read_text()]
    assert offenders == []
