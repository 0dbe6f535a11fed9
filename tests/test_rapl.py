"""RAPL reading logic against fake powercap trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from hackforge_edge.energy import rapl
from hackforge_edge.energy.meter import BackendUnavailable, Meter

MAX_UJ = 1_000_000_000  # 1000 J range, small so a wrap is easy to provoke


def _zone(d: Path, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    d.mkdir(parents=True)
    (d / "name").write_text(f"{name}\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def make_powercap(root: Path) -> Path:
    base = root / "sys" / "class" / "powercap"
    pkg = _zone(base / "intel-rapl:0", "package-0", 10_000_000)
    _zone(pkg / "intel-rapl:0:0", "core", 5_000_000)  # inside the package: not added
    _zone(pkg / "intel-rapl:0:1", "dram", 1_000_000)
    _zone(base / "intel-rapl-mmio:0", "package-0", 10_000_000)  # mirror of the package: ignored
    return base


def _set(base: Path, rel: str, uj: int) -> None:
    (base / rel / "energy_uj").write_text(f"{uj}\n")


def test_discovers_package_and_dram_only(tmp_path):
    make_powercap(tmp_path)
    b = rapl.RaplBackend.discover(str(tmp_path))
    assert set(b.domains) == {"rapl:0:package-0", "rapl:0:1:dram"}
    assert b.domains["rapl:0:package-0"].hw_class == "cpu"
    assert b.domains["rapl:0:1:dram"].hw_class == "ram"
    assert b.domains["rapl:0:package-0"].wrap_j == pytest.approx(1000.0)


def test_window_difference_in_joules(tmp_path):
    base = make_powercap(tmp_path)
    meter = Meter([rapl.RaplBackend.discover(str(tmp_path))])
    meter.begin("w")
    _set(base, "intel-rapl:0", 10_000_000 + 25_000_000)  # +25 J
    _set(base, "intel-rapl:0/intel-rapl:0:1", 1_000_000 + 5_000_000)  # +5 J
    m = meter.end("w")
    assert m.method == "rapl" and m.kind == "measured"
    assert m.energy_j["rapl:0:package-0"] == pytest.approx(25.0)
    assert m.energy_j_total == pytest.approx(30.0)
    assert m.anomalies == []


def test_counter_wrap_uses_max_energy_range(tmp_path):
    base = make_powercap(tmp_path)
    _set(base, "intel-rapl:0", MAX_UJ - 1_000_000)  # 1 J before the wrap
    meter = Meter([rapl.RaplBackend.discover(str(tmp_path))])
    meter.begin("w")
    _set(base, "intel-rapl:0", 2_000_000)  # wrapped, then 2 J more
    m = meter.end("w")
    assert m.energy_j["rapl:0:package-0"] == pytest.approx(3.0)
    assert m.energy_j_total >= 0
    assert any("wrapped" in a for a in m.anomalies)
    assert m.details["domains"]["rapl:0:package-0"]["wrapped"] is True


def test_permission_denied_is_skipped_with_reason(tmp_path, monkeypatch):
    make_powercap(tmp_path)
    real = rapl._read_int

    def deny(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_int", deny)
    with pytest.raises(BackendUnavailable, match="CVE-2020-8694"):
        rapl.RaplBackend.discover(str(tmp_path))


def test_no_powercap_is_skipped_with_reason(tmp_path):
    with pytest.raises(BackendUnavailable, match="powercap"):
        rapl.RaplBackend.discover(str(tmp_path))


def test_file_vanishing_mid_window_is_recorded(tmp_path):
    base = make_powercap(tmp_path)
    meter = Meter([rapl.RaplBackend.discover(str(tmp_path))])
    meter.begin("w")
    (base / "intel-rapl:0" / "energy_uj").unlink()
    _set(base, "intel-rapl:0/intel-rapl:0:1", 3_000_000)
    m = meter.end("w")
    assert "rapl:0:package-0" not in m.energy_j
    assert any("rapl:0:package-0" in a and "unreadable" in a for a in m.anomalies)
    assert m.details["incomplete"] is True
    assert m.details["unread_domains"] == ["rapl:0:package-0"]
    assert m.energy_j_total == pytest.approx(2.0)  # only what was read (DRAM), flagged incomplete
