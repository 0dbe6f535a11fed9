"""The window API, the polling integrator and the factory's order and skipped reasons."""

from __future__ import annotations

import pytest

from hackforge_edge.energy.meter import (
    Backend,
    Domain,
    Measurement,
    Meter,
    PowerPoller,
    cache_hit,
    counter_delta,
    make_meter,
)
from hackforge_edge.errors import MeterError


class CounterBackend(Backend):
    """A hand-driven counter: tests set ``value_j`` between window edges."""

    method = "fake-counter"
    kind = "measured"

    def __init__(self):
        super().__init__([Domain("fake:0", "cpu")])
        self.value_j = 0.0

    def read(self):
        return {"fake:0": self.value_j}


class FailingNVML:
    NVML_ERROR_NOT_SUPPORTED = 3

    class NVMLError(Exception):
        value = 12

    def nvmlInit(self):
        raise self.NVMLError("NVML Shared Library Not Found")


def test_nested_and_overlapping_windows():
    b = CounterBackend()
    meter = Meter([b])
    meter.begin("outer")
    b.value_j = 10.0
    meter.begin("inner")
    b.value_j = 15.0
    outer = meter.end("outer")  # overlapping: closes before "inner"
    b.value_j = 40.0
    inner = meter.end("inner")
    assert outer.energy_j_total == pytest.approx(15.0)
    assert inner.energy_j_total == pytest.approx(30.0)
    assert isinstance(outer, Measurement) and outer.duration_s >= 0


def test_window_names_are_checked():
    meter = Meter([CounterBackend()])
    meter.begin("a")
    with pytest.raises(MeterError, match="already open"):
        meter.begin("a")
    with pytest.raises(MeterError, match="not open"):
        meter.end("b")


def test_measurement_is_frozen():
    m = Meter([CounterBackend()])
    m.begin("a")
    result = m.end("a")
    with pytest.raises(AttributeError):
        result.energy_j_total = 1.0  # type: ignore[misc]


def test_window_context_closes_on_error():
    b = CounterBackend()
    meter = Meter([b])
    with pytest.raises(RuntimeError):
        with meter.window("w") as w:
            b.value_j = 3.0
            raise RuntimeError("training diverged")
    assert w.measurement is not None and w.measurement.energy_j_total == pytest.approx(3.0)
    meter.begin("w")  # the name is free again


def test_sync_called_at_both_edges():
    calls = []
    meter = Meter([CounterBackend()], sync=lambda: calls.append(1))
    meter.begin("w")
    meter.end("w")
    assert len(calls) == 2


@pytest.mark.parametrize("start,end,wrap,expect,note", [
    (1.0, 3.0, None, 2.0, None),
    (9.0, 1.0, 10.0, 2.0, "wrapped"),
    (9.0, 1.0, None, None, "backwards"),
    (1.0, None, None, None, "vanished"),
    (1.0, FileNotFoundError("gone"), None, None, "unreadable"),
])
def test_counter_delta(start, end, wrap, expect, note):
    joules, problem = counter_delta("d", start, end, wrap)
    assert joules == (pytest.approx(expect) if expect is not None else None)
    assert (problem is None) if note is None else (note in problem)


def test_power_poller_trapezoid_with_fake_clock():
    clock = iter([0.0, 1.0, 3.0])
    watts = iter([{"r": 5.0}, {"r": 7.0}, {"r": OSError("gone")}])
    poller = PowerPoller(lambda: next(watts), interval_s=1.0, clock=lambda: next(clock))
    poller.sample_now()
    poller.sample_now()
    assert poller.cumulative()["r"] == pytest.approx(6.0)  # (5 + 7) / 2 W x 1 s
    poller.sample_now()
    assert isinstance(poller.cumulative()["r"], OSError)
    assert poller.samples == 3 and "r: sensor unreadable" in poller.anomalies[0]


def test_minus_idle_and_per_item():
    m = Measurement("infer", 2.0, {"x": 30.0}, 30.0, 15.0, "rapl", "measured", None, {})
    net = m.minus_idle(10.0, origin="idle window before the loop")
    assert net.energy_j_total == pytest.approx(10.0)
    assert net.details["idle_subtracted_j"] == pytest.approx(20.0)
    assert net.per_item(100).energy_j_total == pytest.approx(0.1)
    clamped = m.minus_idle(20.0)
    assert clamped.energy_j_total == 0.0 and "below idle baseline" in clamped.anomalies[0]
    with pytest.raises(MeterError):
        m.per_item(0)


def test_cache_hit_phase():
    m = cache_hit("source_pretrain", note="weights from torchvision cache")
    assert m.kind == "cache-hit" and m.duration_s == 0.0 and m.energy_j_total == 0.0


def test_factory_falls_back_to_estimate_with_reasons_in_order(tmp_path):
    meter = make_meter("auto", sysfs_root=str(tmp_path), nvml=FailingNVML())
    assert meter.method == "cpu-tdp-estimate" and meter.kind == "estimated"
    assert [n for n, _ in meter.skipped] == ["jetson-ina3221", "nvml", "rapl"]
    assert all(reason for _, reason in meter.skipped)
    meter.begin("w")
    m = meter.end("w")
    assert m.details["skipped"][2]["backend"] == "rapl"



def test_factory_order(tmp_path):
    # RAPL present -> no estimate; Jetson present -> Jetson alone (covers the whole module)
    from test_jetson import make_hwmon_tree
    from test_rapl import make_powercap

    make_powercap(tmp_path)
    meter = make_meter("auto", sysfs_root=str(tmp_path), nvml=FailingNVML())
    assert meter.method == "rapl"
    make_hwmon_tree(tmp_path)
    meter = make_meter("auto", sysfs_root=str(tmp_path), nvml=FailingNVML())
    assert meter.method == "jetson-ina3221"
    assert make_meter("cpu", sysfs_root=str(tmp_path)).method == "rapl"
    assert make_meter("estimate", sysfs_root=str(tmp_path), tdp_w=35.0).method == "cpu-tdp-estimate"


def test_factory_bad_device(tmp_path):
    with pytest.raises(MeterError, match="unknown meter device"):
        make_meter("tpu")
    with pytest.raises(MeterError, match="Jetson"):
        make_meter("jetson", sysfs_root=str(tmp_path))
    with pytest.raises(MeterError, match="NVIDIA"):
        make_meter("gpu", sysfs_root=str(tmp_path), nvml=FailingNVML())
