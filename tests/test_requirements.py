"""Requirements: file + flag precedence and one-line errors for impossible values."""

import pytest

from hackforge_edge.errors import RequirementsError
from hackforge_edge.feasibility.requirements import Requirements, load_requirements


def test_defaults_and_percentile_normalised():
    req = load_requirements(max_latency_ms=50, percentile="P95")
    assert req.percentile == "p95"
    assert req.memory_headroom == 0.2
    assert req.operating_hours_per_day == 24
    assert load_requirements(percentile=99).percentile == "p99"


def test_flags_override_file(tmp_path):
    f = tmp_path / "req.yaml"
    f.write_text("max_latency_ms: 100\npercentile: p50\nworkload:\n  items_per_day: 1000\n"
                 "  hours_per_day: 8\ngrid:\n  region: FRA\n  pue: 1.2\n")
    req = load_requirements(f, max_latency_ms=20, region=None)
    assert req.max_latency_ms == 20            # flag wins
    assert req.percentile == "p50"             # file kept
    assert req.items_per_day == 1000 and req.operating_hours_per_day == 8
    assert req.region == "FRA" and req.pue == 1.2


@pytest.mark.parametrize("field,value", [
    ("max_latency_ms", -5), ("max_latency_ms", 0), ("min_throughput_per_s", 0),
    ("memory_headroom", 1.0), ("memory_headroom", -0.1), ("power_budget_w", -1),
    ("items_per_day", 0), ("operating_hours_per_day", 25), ("grid_intensity_g_per_kwh", 0),
    ("pue", 0.5), ("percentile", "p90"),
])
def test_impossible_values_name_the_field(field, value):
    with pytest.raises(RequirementsError) as exc:
        load_requirements(**{field: value})
    msg = str(exc.value)
    assert field in msg and "\n" not in msg


def test_all_errors_reported_together():
    with pytest.raises(RequirementsError) as exc:
        load_requirements(max_latency_ms=-1, power_budget_w=0)
    assert "max_latency_ms" in str(exc.value) and "power_budget_w" in str(exc.value)


def test_file_errors(tmp_path):
    with pytest.raises(RequirementsError, match="not found"):
        load_requirements(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_latency_ms: [1, 2\n")
    with pytest.raises(RequirementsError, match="not valid YAML"):
        load_requirements(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("max_latency: 5\n")
    with pytest.raises(RequirementsError, match="unknown field 'max_latency'"):
        load_requirements(unknown)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(RequirementsError, match="mapping"):
        load_requirements(listy)


def test_headroom_zero_allowed_and_is_empty():
    req = Requirements(memory_headroom=0)
    assert req.is_empty()
    assert not Requirements(max_latency_ms=1).is_empty()
