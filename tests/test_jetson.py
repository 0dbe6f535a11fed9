"""Jetson INA3221 rails against fake sysfs trees (JetPack 5/6 hwmon and JetPack 4 iio layouts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hackforge_edge.energy import jetson
from hackforge_edge.energy.meter import BackendUnavailable, Meter, make_meter


def make_hwmon_tree(root: Path) -> Path:
    """Orin Nano/NX-style: VDD_IN (5 V x 1 A = 5 W), two sub-rails, and a sum channel."""
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hw.mkdir(parents=True)
    rails = {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 400), 3: ("VDD_SOC", 5000, 200)}
    for n, (label, mv, ma) in rails.items():
        (hw / f"in{n}_label").write_text(label + "\n")
        (hw / f"in{n}_input").write_text(f"{mv}\n")
        (hw / f"curr{n}_input").write_text(f"{ma}\n")
    (hw / "in7_label").write_text("sum of shunt voltage\n")  # no curr7_input: not a rail
    (hw / "in7_input").write_text("12\n")
    return hw


def make_iio_tree(root: Path) -> Path:
    """Jetson Nano (JetPack 4) style: POM_5V_IN etc. under ina3221x/iio:device0."""
    iio = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    iio.mkdir(parents=True)
    for n, (label, mv, ma) in enumerate([("POM_5V_IN", 5000, 800), ("POM_5V_GPU", 5000, 100),
                                         ("POM_5V_CPU", 5000, 300)]):
        (iio / f"rail_name_{n}").write_text(label + "\n")
        (iio / f"in_voltage{n}_input").write_text(f"{mv}\n")
        (iio / f"in_current{n}_input").write_text(f"{ma}\n")
    return iio


def test_hwmon_layout_rails_and_power(tmp_path):
    make_hwmon_tree(tmp_path)
    b = jetson.JetsonBackend.discover(str(tmp_path))
    assert sorted(b.rails) == ["VDD_CPU_GPU_CV", "VDD_IN", "VDD_SOC"]
    p = b.sample_power_w()
    assert p["jetson:VDD_IN"] == pytest.approx(5.0)
    assert p["jetson:VDD_SOC"] == pytest.approx(1.0)
    assert b.total_rail == "VDD_IN"
    assert b.domains["jetson:VDD_IN"].in_total
    assert not b.domains["jetson:VDD_SOC"].in_total  # sub-rail of VDD_IN


def test_iio_layout_rails(tmp_path):
    make_iio_tree(tmp_path)
    b = jetson.JetsonBackend.discover(str(tmp_path))
    assert b.total_rail == "POM_5V_IN"
    assert b.sample_power_w()["jetson:POM_5V_IN"] == pytest.approx(4.0)


def test_without_module_rail_total_is_sum(tmp_path):
    hw = make_hwmon_tree(tmp_path)
    (hw / "in1_label").write_text("VDD_GPU_SOC\n")  # AGX-style labels, no VDD_IN
    b = jetson.JetsonBackend.discover(str(tmp_path))
    assert b.total_rail is None
    assert all(d.in_total for d in b.domains.values())


def test_not_a_jetson_is_skipped(tmp_path):
    with pytest.raises(BackendUnavailable, match="not a Jetson"):
        jetson.JetsonBackend.discover(str(tmp_path))


def test_window_integrates_polled_power(tmp_path):
    make_hwmon_tree(tmp_path)
    meter = make_meter(sysfs_root=str(tmp_path), nvml=None, poll_interval_s=0.01)
    assert meter.method == "jetson-ina3221"
    backend = meter.backends[0]
    ticks = iter(range(10_000))
    backend.poller._clock = lambda: float(next(ticks))  # one "second" per sample: exact integral
    backend.poller.interval_s = 3600.0  # keep the thread from sampling during the test
    meter.begin("w")
    for _ in range(3):
        backend.poller.sample_now()
    m = meter.end("w")
    assert m.kind == "measured" and m.method == "jetson-ina3221"
    assert set(m.energy_j) == {"jetson:VDD_IN", "jetson:VDD_CPU_GPU_CV", "jetson:VDD_SOC"}
    assert m.energy_j_total == pytest.approx(m.energy_j["jetson:VDD_IN"])  # sub-rails not added again
    assert m.details["samples"] == 4  # samples after the begin edge: 3 manual + the end edge
    assert m.energy_j["jetson:VDD_IN"] == pytest.approx(5.0 * 4)  # 5 W over 4 fake seconds
    assert m.energy_j["jetson:VDD_SOC"] == pytest.approx(1.0 * 4)
    assert backend.poller._thread is None  # polling thread stopped with the last window


def test_sub_rail_vanishing_mid_window_is_recorded(tmp_path):
    hw = make_hwmon_tree(tmp_path)
    b = jetson.JetsonBackend.discover(str(tmp_path), interval_s=10.0)
    meter = Meter([b])
    meter.begin("w")
    (hw / "curr2_input").unlink()
    m = meter.end("w")
    assert any("VDD_CPU_GPU_CV" in a for a in m.anomalies)
    assert "jetson:VDD_CPU_GPU_CV" not in m.energy_j
    assert m.energy_j_total is not None and m.energy_j_total >= 0  # VDD_IN still read


def test_module_rail_vanishing_gives_no_total_not_zero(tmp_path):
    hw = make_hwmon_tree(tmp_path)
    b = jetson.JetsonBackend.discover(str(tmp_path), interval_s=10.0)
    meter = Meter([b])
    meter.begin("w")
    (hw / "in1_input").unlink()
    m = meter.end("w")
    assert m.energy_j_total is None
    assert m.details["incomplete"] is True
    assert any("VDD_IN" in a for a in m.anomalies)
