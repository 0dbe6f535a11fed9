"""Hardware profiles: every shipped YAML loads, cites sources, and bad input fails clearly."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from hackforge_edge.errors import HFEdgeError, ProfileError
from hackforge_edge.profiling.hardware import (
    detect_local,
    list_profiles,
    load_profile,
    local_data,
    profile_from_dict,
)

SHIPPED = [n for n in list_profiles() if n != "local"]
# fields whose numbers must be covered by at least one citation in every shipped profile
MUST_CITE = ("peak_tflops.fp32", "memory_gb", "bandwidth_gbs", "power_modes.max_w",
             "power_modes.idle_w")


def test_at_least_nine_profiles_including_local():
    names = list_profiles()
    assert "local" in names and len(names) >= 9
    for required in ("nvidia-t4", "jetson-agx-orin-64gb", "jetson-orin-nx-16gb",
                     "jetson-orin-nano-8gb", "jetson-xavier-nx", "jetson-nano", "raspberry-pi-5"):
        assert required in names


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_and_cites_its_numbers(name):
    p = load_profile(name)
    assert p.name == name
    assert p.sources, f"{name}: no sources"
    covered = {c for s in p.sources for c in s.covers}
    missing = [f for f in MUST_CITE if f not in covered]
    assert not missing, f"{name}: no source covers {missing}"
    assert p.peak_flops("fp32") > 0 and p.bandwidth_bps() > 0
    # shipped efficiencies are priors, or fitted to published results and saying on what
    assert p.efficiency.source
    assert p.efficiency.calibrated is False or p.efficiency.calibrated_on is not None
    assert p.engine in ("tensorrt", "ort-cuda", "ort-cpu")
    for m in p.power_modes:
        assert 0 <= m.idle_w <= m.max_w


def test_profile_without_sources_is_rejected(tmp_path):
    data = load_profile("nvidia-t4").to_json()
    data.pop("sources")
    data.pop("origin", None)
    bad = tmp_path / "nosources.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as exc:
        load_profile(str(bad))
    assert "nosources.yaml" in str(exc.value) and "sources" in str(exc.value)
    data["sources"] = []
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="sources"):
        load_profile(str(bad))


def test_bad_user_yaml_names_file_and_field(tmp_path):
    data = load_profile("raspberry-pi-5").to_json()
    data.pop("origin")
    data["bandwidth_gbs"] = -3
    data["power_modes"][0]["max_w"] = "lots"
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as exc:
        load_profile(f)
    msg = str(exc.value)
    assert "mine.yaml" in msg and "bandwidth_gbs" in msg and "power_modes.0.max_w" in msg
    assert "\n" not in msg
    f.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(f)


def test_user_yaml_by_path_works(tmp_path):
    data = load_profile("raspberry-pi-5").to_json()
    data.pop("origin")
    data["name"] = "my-pi"
    f = tmp_path / "my-pi.yaml"
    f.write_text(yaml.safe_dump(data))
    p = load_profile(str(f))
    assert p.name == "my-pi" and p.origin == str(f)


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ProfileError) as exc:
        load_profile("cray-1")
    assert "cray-1" in str(exc.value) and "nvidia-t4" in str(exc.value) and "local" in str(exc.value)


def test_power_modes_scale_compute_and_bandwidth_separately():
    p = load_profile("jetson-orin-nano-8gb")
    assert {m.name for m in p.power_modes} >= {"7W", "15W", "25W-super"}
    full, low = p.mode("25W-super"), p.mode("7W")
    assert p.peak_flops("fp32", "7W") / p.peak_flops("fp32") == pytest.approx(low.compute_scale)
    assert p.bandwidth_bps("7W") / p.bandwidth_bps() == pytest.approx(low.bandwidth_scale)
    assert low.compute_scale != low.bandwidth_scale and full.compute_scale == 1.0
    with pytest.raises(ProfileError, match="unknown mode"):
        p.mode("9000W")


def test_unsupported_precision_is_none():
    assert load_profile("jetson-nano").peak_flops("int8") is None
    with pytest.raises(ProfileError):
        load_profile("jetson-nano").peak_flops("fp8")


def test_local_detection_from_fake_cpuinfo(monkeypatch):
    monkeypatch.delenv("HF_EDGE_LOCAL_TDP_W", raising=False)
    info = {"model": "Imaginary CPU 9000", "flags": {"avx2", "fma", "avx512f", "avx512_vnni"},
            "mhz": 3000.0}
    p = detect_local(cpuinfo=info)
    d = p.detected
    assert p.name == "local" and p.engine == "ort-cpu"
    assert d["cpu_model"] == "Imaginary CPU 9000" and "avx512_vnni" in d["isa_flags"]
    assert d["tdp_source"].startswith("assumed") and d["known_cpu_entry"] is None
    assert p.peak_tflops.int8 == pytest.approx(4 * p.peak_tflops.fp32)
    assert p.peak_tflops.fp16 is None          # no avx512_fp16 flag
    assert any(s.tag == "A" for s in p.sources)
    monkeypatch.setenv("HF_EDGE_LOCAL_TDP_W", "35")
    p2 = detect_local(cpuinfo=info)
    assert p2.mode().max_w == 35 and p2.detected["tdp_source"] == "user value"
    p3 = detect_local(cpuinfo={**info, "model": "11th Gen Intel(R) Core(TM) i7-1185G7E"}, tdp_w=None)
    assert p3.detected["tdp_source"] == "user value"   # env still wins over the table
    monkeypatch.delenv("HF_EDGE_LOCAL_TDP_W")
    p4 = detect_local(cpuinfo={**info, "model": "11th Gen Intel(R) Core(TM) i7-1185G7E"})
    assert p4.detected["known_cpu_entry"] and p4.detected["tdp_source"].startswith("known CPU")


def test_local_on_this_machine_loads():
    p = load_profile("local")
    assert p.cpu_cores >= 1 and p.memory_gb > 0 and p.detected["cpu_model"]


def test_local_data_table_has_sources():
    data = local_data()
    assert data["fallback"]["source"] and data["efficiency"]["source"]
    assert all(k.get("source") for k in data["known_cpus"])


def test_profile_from_dict_rejects_non_mapping():
    with pytest.raises(ProfileError, match="mapping"):
        profile_from_dict([1, 2], "x.yaml")


def test_cli_profiles_list_and_show(monkeypatch):
    from hackforge_edge.cli import app, main

    monkeypatch.setenv("COLUMNS", "250")      # Rich wraps table cells to the terminal width
    runner = CliRunner()
    out = runner.invoke(app, ["profiles", "list"], terminal_width=250)
    assert out.exit_code == 0, out.output
    for name in list_profiles():
        assert name in out.output
    out = runner.invoke(app, ["profiles", "show", "jetson-orin-nano-8gb"])
    assert out.exit_code == 0 and "sources:" in out.output and "7W" in out.output
    with pytest.raises(HFEdgeError):
        runner.invoke(app, ["profiles", "show", "nope"], catch_exceptions=False)
    assert main(["profiles", "show", "nope"]) != 0
