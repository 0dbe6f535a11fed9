"""Cost of ownership: sourced prices, tariff/horizon requirements, ranking by cost per million."""

import json

import pytest
from test_cli_profile import FAST, _out, invoke

from hackforge_edge.errors import HFEdgeError
from hackforge_edge.feasibility.requirements import Requirements, load_requirements
from hackforge_edge.profiling.hardware import list_profiles, load_profile, profile_from_dict

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_every_shipped_profile_has_a_sourced_dated_price():
    for name in list_profiles():
        p = load_profile(name)
        if name == "local":
            assert p.price is None          # this machine's price is only ever the user's
            continue
        assert p.price is not None and p.price.value > 0 and p.price.currency == "USD", name
        assert p.price.basis in ("vendor-list", "retailer", "assumed") and len(p.price.source) > 20
        assert (p.price.basis == "assumed") == (p.price.tag == "A"), name


def test_negative_price_is_one_line():
    data = load_profile("raspberry-pi-5").model_dump(exclude={"origin", "detected"})
    data["price"] = {**data["price"], "value": -1}
    with pytest.raises(HFEdgeError, match="price.value") as exc:
        profile_from_dict(data, "x.yaml")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("kw, field", [({"tariff_per_kwh": -0.1}, "tariff_per_kwh"),
                                       ({"horizon_years": 0}, "horizon_years"),
                                       ({"price_override": {"nvidia-t4": -5}}, "price_override")])
def test_bad_cost_requirements_one_line(kw, field):
    with pytest.raises(HFEdgeError, match=field) as exc:
        load_requirements(**kw)
    assert "\n" not in str(exc.value)


def test_hospital_example_has_tariff_and_horizon():
    req = load_requirements("examples/requirements-hospital.yaml")
    assert req.tariff_per_kwh > 0 and req.horizon_years > 0 and req.currency == "USD"


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from test_cli_profile import _export
    return _export(tmp_path_factory.mktemp("m") / "tiny.onnx")


def test_cost_numbers_and_ranking(onnx_model):
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.feasibility.verdict import evaluate
    from hackforge_edge.profiling.profiler import profile_model

    prof = profile_model(onnx_model, ["nvidia-t4", "raspberry-pi-5", "jetson-orin-nano-8gb"],
                         batch_sizes=(1, 2), measure_local=False)
    req = Requirements(max_latency_ms=1000, items_per_day=1e6, operating_hours_per_day=10,
                       region="FRA", tariff_per_kwh=0.2, horizon_years=4,
                       price_override={"nvidia-t4": 1500})
    feas = evaluate(prof, req, resolve_grid("FRA", None, None))
    assert feas.ranking and [r.rank for r in feas.ranking] == list(range(1, len(feas.ranking) + 1))
    per_m = [r.cost_per_million_inferences for r in feas.ranking]
    assert per_m == sorted(per_m)
    for r in feas.ranking:
        e = next(e for e in feas.entries if (e.profile, e.mode, e.precision) == (r.profile, r.mode, r.precision))
        c = e.cost
        price = 1500 if r.profile == "nvidia-t4" else load_profile(r.profile).price.value
        assert c.devices == e.workload.devices_needed and c.purchase == pytest.approx(c.devices * price)
        assert c.energy_kwh == pytest.approx(e.energy_per_year_kwh.value * 4)
        assert c.energy_cost == pytest.approx(c.energy_kwh * c.pue * 0.2)
        assert c.co2_kg == pytest.approx(e.co2_kg_per_year.value * 4)
        assert c.cost_per_million_inferences == pytest.approx(
            (c.purchase + c.energy_cost) / (1e6 * feas.config.days_per_year * 4) * 1e6)
        assert feas.summary[r.profile].recommended.precision == r.precision
    t4 = next(e for e in feas.entries if e.profile == "nvidia-t4" and e.cost is not None)
    assert t4.cost.price_basis == "override"
    # without a tariff: no cost, no ranking, and the entry says why
    bare = evaluate(prof, Requirements(max_latency_ms=1000, items_per_day=1e6))
    assert not bare.ranking and all(e.cost is None for e in bare.entries)
    assert any("tariff_per_kwh" in (e.cost_note or "") for e in bare.entries)


def test_cli_prints_ranking_and_refuses_unknown_override(onnx_model, tmp_path):
    r = invoke("profile", onnx_model, "-p", "raspberry-pi-5", "-p", "jetson-orin-nano-8gb", *FAST,
               "--requirements", "examples/requirements-hospital.yaml", "--out", tmp_path / "a")
    assert r.exit_code == 0, _out(r)
    assert "Ranking by cost per million inferences" in r.output
    feas = json.loads((tmp_path / "a" / "feasibility.json").read_text())
    assert feas["ranking"] and feas["ranking"][0]["rank"] == 1
    y = tmp_path / "req.yaml"
    y.write_text("cost: {tariff_per_kwh: 0.3, horizon_years: 5, price_override: {nvidia-t5: 10}}\n")
    r = invoke("profile", onnx_model, "-p", "raspberry-pi-5", *FAST, "--requirements", y, "--out", tmp_path / "b")
    out = _out(r).strip()
    assert r.exit_code == 2 and "nvidia-t5" in out and len(out.splitlines()) == 1, out
    r = invoke("profile", onnx_model, "-p", "raspberry-pi-5", *FAST, "--horizon-years", "0", "--out", tmp_path / "c")
    assert r.exit_code == 2 and "horizon_years" in _out(r) and not (tmp_path / "c").exists()
