"""The verdict as a pure function of typed profiles built from the artifact models."""

import json

import pytest

from hackforge_edge.energy.carbon import resolve_grid
from hackforge_edge.feasibility.artifact import Feasibility
from hackforge_edge.feasibility.requirements import Requirements
from hackforge_edge.feasibility.verdict import FAIL, MARGINAL, PASS, FeasibilityConfig, evaluate
from hackforge_edge.profiling.artifact import (
    Band,
    BatchMeasurement,
    CalibrationInfo,
    Efficiencies,
    EnergyEstimate,
    LatencyBreakdown,
    LatencyStats,
    LocalMeasurement,
    Measured,
    MeasuredEnergy,
    MemoryBreakdown,
    MemoryMeasurement,
    ModelInfo,
    PowerEstimate,
    Profile,
    ProjectionRecord,
    Roofs,
    StaticRecord,
    StaticTotals,
)
from hackforge_edge.profiling.hardware import PowerMode, load_profile

GIB = 2**30
GRID = resolve_grid("FRA")


def proj(profile="dev", mode="15W", batch=1, lat=(40.0, 30.0, 45.0), thr=None, mem=(1 * GIB, 8 * GIB),
         power=10.0, e_j=0.4):
    v, lo, hi = lat
    return ProjectionRecord(
        profile=profile, display_name=profile, mode=mode, default_mode=True, engine="ort-cuda",
        precision="fp32", batch=batch, method="per-layer roofline", latency_definition="end to end",
        latency_ms=Band(value=v, low=lo, high=hi),
        throughput_per_s=thr if thr is not None else batch * 1000.0 / v,
        memory_required_bytes=mem[0], memory_capacity_bytes=mem[1], memory_available_bytes=mem[1],
        memory_breakdown=MemoryBreakdown(weights_bytes=mem[0], peak_activation_bytes=0,
                                         runtime_overhead_bytes=0),
        power_w=PowerEstimate(value=power, method="idle + util x (max - idle)"),
        energy_per_inference_j=EnergyEstimate(value=e_j, low=e_j, high=e_j, method="latency x power"),
        calibration=CalibrationInfo(calibrated=False, source="prior", band_low=0.75, band_high=1.2),
        efficiencies=Efficiencies(eta_c=0.5, eta_c_depthwise=0.2, eta_m=0.6, t_launch_us=5,
                                  t_host_ms=0.1, source="prior"),
        roofs=Roofs(compute_tflops=1.0, bandwidth_gbs=50.0),
        breakdown_ms=LatencyBreakdown(compute_bound=v, memory_bound=0, launch=0, host=0),
        n_kernels=10, bound="compute")


def hardware(name="dev", mode="15W", idle_w=2.0):
    """A shipped profile renamed, with one power mode of the given idle power."""
    return load_profile("jetson-orin-nano-8gb").model_copy(update={
        "name": name, "default_mode": mode,
        "power_modes": [PowerMode(name=mode, idle_w=idle_w, max_w=15.0, compute_scale=1.0,
                                  bandwidth_scale=1.0)]})


def profile_json(*projs, hw=(), local=None, static=None):
    return Profile(generated_at="2026-01-01T00:00:00Z", model=ModelInfo(path="m.onnx", bytes=1),
                   static=static or {}, local=local, projections=list(projs),
                   profiles={h.name: h for h in hw})


def local_measurement(device=None, rss_delta=10 * 2**20):
    ok = BatchMeasurement(
        batch=1, status="ok", method="wall clock", runs=20, throughput_per_s=45.0,
        latency_ms=LatencyStats(p50=20.0, p95=24.0, p99=60.0, mean=22.0, min=19.0, std=1.0),
        energy_per_inference_j=MeasuredEnergy(value=0.3, kind="estimated", method="tdp", avg_power_w=14.0))
    return LocalMeasurement(
        method="wall clock", engine="ort-cpu", path="m.onnx", providers=["CPUExecutionProvider"],
        onnxruntime_version="1.x", warmup=1, runs=20,
        device={"memory_bytes": 16 * GIB} if device is None else device,
        session_create_s=Measured(value=0.01, method="perf_counter"),
        memory=MemoryMeasurement(rss_before_bytes=100, rss_after_load_bytes=100 + rss_delta,
                                 rss_peak_bytes=300 * 2**20, rss_delta_bytes=rss_delta, method="psutil"),
        batches=[ok, BatchMeasurement(batch=4, status="skipped", reason="budget", method="wall clock")])


def only(result):
    assert len(result.entries) == 1
    return result.entries[0]


def test_latency_pass_marginal_fail():
    req = Requirements(max_latency_ms=50, percentile="p99")
    # p99 at band high 45 <= 50 * 0.9 -> PASS
    e = only(evaluate(profile_json(proj(lat=(40, 30, 45))), req, GRID))
    assert e.checks.latency.verdict == PASS and e.verdict == PASS
    # the brief's example: 41.2 (30-55) vs 50 -> band straddles -> MARGINAL
    c = only(evaluate(profile_json(proj(lat=(41.2, 30, 55))), req, GRID)).checks.latency
    assert c.verdict == MARGINAL and "straddles" in c.reason and "41.2" in c.reason
    assert c.decisive_ms == 55
    # central value over the limit -> FAIL
    e = only(evaluate(profile_json(proj(lat=(60, 45, 80))), req, GRID))
    assert e.verdict == FAIL and "exceeds" in e.checks.latency.reason
    # within the margin but band below the limit -> MARGINAL
    c = only(evaluate(profile_json(proj(lat=(46, 44, 48))), req, GRID)).checks.latency
    assert c.verdict == MARGINAL and "within 10%" in c.reason


def test_percentile_maps_onto_band():
    pj = profile_json(proj(lat=(30, 20, 48)))
    # p50 decisive = 30 -> PASS (band high 48 <= 50); p99 decisive = 48 > 45 -> MARGINAL
    assert only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p50"), None)).verdict == PASS
    p95 = only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p95"), None))
    assert p95.checks.latency.decisive_ms == pytest.approx(39)
    assert only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p99"), None)).verdict == MARGINAL


def test_memory_and_power_and_throughput():
    req = Requirements(memory_headroom=0.25, power_budget_w=12, min_throughput_per_s=20)
    e = only(evaluate(profile_json(proj(mem=(7 * GIB, 8 * GIB), power=11.5, thr=21)), req, None))
    assert e.checks.memory.verdict == MARGINAL      # fits, eats headroom
    assert e.checks.power.verdict == MARGINAL       # within 10 % of 12 W
    assert e.checks.throughput.verdict == MARGINAL  # band low 21 x 40/45 = 18.7 < 20
    assert e.checks.throughput.low_per_s == pytest.approx(21 * 40 / 45)
    e = only(evaluate(profile_json(proj(mem=(9 * GIB, 8 * GIB), power=13, thr=10)), req, None))
    assert e.verdict == FAIL
    assert {c.verdict for c in e.checks.present()} == {FAIL}
    e = only(evaluate(profile_json(proj(mem=(1 * GIB, 8 * GIB), power=5, thr=100, lat=(10, 9, 11))), req, None))
    assert e.verdict == PASS


def test_devices_needed_and_energy_per_year():
    # 1,000,000 items over 10 h = 27.78/s; 20/s per device x 0.5 utilisation = 10/s -> 3 devices
    cfg = FeasibilityConfig(utilisation_target=0.5)
    req = Requirements(items_per_day=1_000_000, operating_hours_per_day=10)
    p = proj(thr=20.0, lat=(50, 50, 50), e_j=0.5)
    e = only(evaluate(profile_json(p, hw=[hardware(idle_w=2.0)]), req, GRID, cfg))
    wl = e.workload
    assert wl.required_rate_per_s == pytest.approx(1e6 / 36000)
    assert wl.devices_needed == 3
    busy_s = 1e6 / 3 / 20.0                           # per device, seconds per day
    idle_j = 2.0 * 3 * (36000 - busy_s)
    active_j = 1e6 * 0.5
    day = e.energy_per_day_kwh
    assert day.active_kwh == pytest.approx(active_j / 3.6e6)
    assert day.idle_kwh == pytest.approx(idle_j / 3.6e6)
    assert day.idle_power_w == 2.0 and "power mode 15W idle_w" in day.idle_power_source
    assert e.energy_per_year_kwh.value == pytest.approx((active_j + idle_j) / 3.6e6 * 365)
    co2 = e.co2_kg_per_year
    assert co2.value == pytest.approx(e.energy_per_year_kwh.value * GRID.intensity_g_per_kwh / 1000)
    assert co2.intensity_g_per_kwh == GRID.intensity_g_per_kwh and co2.region == "FRA"
    assert e.energy_kwh_per_1000_inferences == pytest.approx(0.5 * 1000 / 3.6e6)


def test_devices_exact_fit_and_missing_idle_and_grid():
    req = Requirements(items_per_day=20 * 0.7 * 3600 * 24)   # exactly one device at 70 %
    e = only(evaluate(profile_json(proj(thr=20.0)), req, None))
    assert e.workload.devices_needed == 1
    assert e.co2_kg_per_year is None
    assert any("idle power" in n for n in e.notes) and any("grid" in n for n in e.notes)
    # no workload: no per-day numbers, but energy per inference is still there
    e = only(evaluate(profile_json(proj()), Requirements(), GRID))
    assert e.workload is None and e.energy_per_year_kwh is None
    assert e.energy_per_inference_j.value == 0.4 and e.energy_per_inference_j.kind == "estimated"


def test_best_batch_per_group_and_summary():
    req = Requirements(max_latency_ms=50, percentile="p50")
    pj = profile_json(proj(batch=1, lat=(10, 9, 11)), proj(batch=4, lat=(30, 27, 33)),
                      proj(batch=8, lat=(70, 60, 80)),
                      proj(profile="pi", mode="default", lat=(200, 150, 260)))
    out = evaluate(pj, req, GRID)
    dev = [e for e in out.entries if e.profile == "dev"][0]
    assert dev.batch == 4 and dev.verdict == PASS      # pass at higher throughput
    assert [b.verdict for b in dev.batches] == [PASS, PASS, FAIL]
    assert out.summary["pi"].best_verdict == FAIL
    assert out.counts == {PASS: 1, MARGINAL: 0, FAIL: 1}


def test_pure_config_echoed_and_round_trips():
    pj = profile_json(proj(), local=local_measurement(device={}))
    before = pj.model_copy(deep=True)
    req = Requirements(max_latency_ms=100, items_per_day=1000)
    a = evaluate(pj, req, GRID)
    assert a == evaluate(pj, req, GRID) and pj == before
    data = json.loads(json.dumps(a.to_json(), allow_nan=False))      # plain JSON, no NaN
    assert Feasibility.from_json(data) == a                           # the file reads back
    assert a.config.marginal_margin == 0.10
    assert data["config"]["percentile_band_position"] == {"p50": 0.0, "p95": 0.5, "p99": 1.0}
    assert data["requirements"]["max_latency_ms"] == 100 and data["grid"]["region"] == "FRA"
    # this machine's memory is unknown here: the memory check cannot confirm
    missing = [e for e in a.entries if e.profile == "this-machine"][0]
    assert missing.verdict == MARGINAL and "cannot confirm" in missing.checks.memory.reason


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        FeasibilityConfig(marginal_margin=1.5)
    with pytest.raises(ValueError):
        FeasibilityConfig(utilisation_target=0)


def test_local_measurement_judged_as_measured():
    pj = profile_json(local=local_measurement(rss_delta=300 * 2**20))
    p99 = only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p99"), None))
    assert p99.profile == "this-machine" and p99.kind == "measured"
    assert p99.verdict == FAIL and "measured 60 ms" in p99.checks.latency.reason
    p95 = only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p95"), None))
    assert p95.verdict == PASS and p95.checks.memory.kind == "measured"
    assert p95.energy_per_inference_j.value == 0.3 and p95.power_w.value == 14.0
    assert p95.memory_required_bytes == 300 * 2**20            # the RSS growth, no static analysis
    # with the RSS growth and the static need, the larger one is judged (RSS growth is a lower bound)
    totals = StaticTotals(macs=1, flops=2, params=1, weight_bytes=40 * 2**20, bytes_moved=1,
                          peak_activation_bytes=2 * 2**20, nodes=1)
    static = {"1": StaticRecord(method="onnx", path="m.onnx", batch=1, totals=totals)}
    pj = profile_json(local=local_measurement(rss_delta=10 * 2**20), static=static)
    p95 = only(evaluate(pj, Requirements(max_latency_ms=50, percentile="p95"), None))
    assert p95.memory_required_bytes == 42 * 2**20 and "static" in p95.memory_method
