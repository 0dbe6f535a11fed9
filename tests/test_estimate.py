"""CPU estimate backend (process share of TDP) and the inference-energy helper."""

from __future__ import annotations

from collections import namedtuple

import pytest

from hackforge_edge.energy.estimate import CpuEstimateBackend, estimate_inference_energy_j
from hackforge_edge.energy.meter import Meter
from hackforge_edge.errors import MeterError

CpuTimes = namedtuple("CpuTimes", "user system children_user children_system")


class FakeProcess:
    def __init__(self):
        self.t = CpuTimes(10.0, 2.0, 0.0, 0.0)

    def cpu_times(self):
        return self.t


def test_estimate_is_labelled_with_tdp_origin_and_band():
    proc = FakeProcess()
    b = CpuEstimateBackend(tdp_w=65.0, tdp_origin="profile 'local': Intel i5-8500 65 W (ark.intel.com)",
                           process=proc, logical_cpus=4, physical_cores=4)
    meter = Meter([b])
    meter.begin("train")
    proc.t = CpuTimes(11.5, 2.5, 0.0, 0.0)  # 2 CPU seconds
    m = meter.end("train")
    assert m.kind == "estimated" and m.method == "cpu-tdp-estimate"
    assert m.energy_j_total == pytest.approx(2.0 * 65.0 / 4)
    assert m.band == (-0.6, 1.9)
    assert m.details["tdp_w"] == 65.0
    assert "ark.intel.com" in m.details["tdp_origin"]
    assert "CodeCarbon" in m.details["band_source"]
    assert m.details["process_cpu_time_s"] == pytest.approx(2.0)


def test_children_cpu_time_counts():
    proc = FakeProcess()
    meter = Meter([CpuEstimateBackend(tdp_w=40.0, process=proc, logical_cpus=2)])
    meter.begin("w")
    proc.t = CpuTimes(10.0, 2.0, 1.0, 0.0)  # a DataLoader worker used 1 s
    assert meter.end("w").energy_j_total == pytest.approx(20.0)


def test_default_tdp_origin_is_documented():
    b = CpuEstimateBackend(process=FakeProcess(), logical_cpus=8, physical_cores=4)
    assert b.tdp_w == pytest.approx(48.0)
    assert b.tdp_origin.startswith("default: 12 W per core (no CPU model match)")


def test_no_cpu_time_is_flagged_not_silent():
    meter = Meter([CpuEstimateBackend(tdp_w=10.0, process=FakeProcess(), logical_cpus=1)])
    meter.begin("w")
    m = meter.end("w")
    assert m.energy_j_total == 0.0
    assert any("did not advance" in a for a in m.anomalies)


@pytest.mark.parametrize("tdp", [0.0, -5.0, float("nan")])
def test_bad_tdp_rejected(tdp):
    with pytest.raises(MeterError):
        CpuEstimateBackend(tdp_w=tdp, process=FakeProcess(), logical_cpus=1)


def test_inference_energy_linear_model():
    value, band = estimate_inference_energy_j(0.010, idle_w=5.0, max_w=15.0, utilisation=0.5)
    assert value == pytest.approx(0.010 * (5.0 + 0.5 * 10.0))
    assert band == (-0.6, 1.9)


@pytest.mark.parametrize("args", [(-1, 1, 2, 0.5), (1, 3, 2, 0.5), (1, 1, 2, 1.5), (1, 1, 2, float("nan"))])
def test_inference_energy_bad_input(args):
    with pytest.raises(MeterError):
        estimate_inference_energy_j(*args)
