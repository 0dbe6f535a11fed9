"""hf-edge sweep: the grid runs, resumes after SIGKILL, records failures, refuses bad input,
and gives the same rows on Ray as locally. Tiny settings: 16 px, 1 epoch, a few images."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from hackforge_edge.cli import main  # noqa: E402
from hackforge_edge.errors import UsageError  # noqa: E402
from hackforge_edge.recipes import sweep as recipe  # noqa: E402
from hackforge_edge.sweep.cells import Cell, SweepDir  # noqa: E402
from hackforge_edge.sweep.executors import RunOptions  # noqa: E402
from hackforge_edge.sweep.spec import SweepSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = dict(image_size=16, epochs=1, batch_size=8, weights="none",
            synthetic_sizes={"train": 16, "val": 8, "test": 16})
COMPARED = ("accuracy", "f1", "roc_auc", "test_loss", "best_val_accuracy", "trainable_params",
            "train_images")


def _spec(tmp_path, name="s", **over) -> SweepSpec:
    fields = dict(models=["tinycnn"], strategies=["scratch", "frozen"], fractions=[1.0, 0.5],
                  seeds=[0, 1], out=str(tmp_path / name), **TINY)
    fields.update(over)
    return SweepSpec.build(**fields)


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_models_two_strategies_two_fractions_two_seeds(tmp_path):
    spec = _spec(tmp_path, models=["tinycnn", "mobilenet_v3_small"])
    seen = []
    out = recipe.run_sweep(spec, RunOptions(threads=1), on_cell=lambda r, d, t: seen.append(d))
    assert out.ran == 16 and out.failed == 0 and seen == list(range(1, 17))
    rows = _csv(out.root / "results.csv")
    assert len(rows) == 16 and len({r["cell_id"] for r in rows}) == 16
    # energy columns carry CodeCarbon's names
    assert {"duration", "emissions", "energy_consumed", "cpu_energy"} <= set(rows[0])
    # cells of a few ms can fall below the CPU-time resolution of the estimate: never negative,
    # never missing, and the sweep as a whole registers some energy
    assert all(float(r["energy_consumed"]) >= 0 for r in rows)
    assert sum(float(r["energy_consumed"]) for r in rows) > 0
    doc = json.loads((out.root / "summary.json").read_text())
    assert len(doc["groups"]) == 8 and "t-interval" in doc["interval_method"]
    for g in doc["groups"]:
        assert g["seeds"] == [0, 1]
        for key in ("accuracy", "energy_consumed"):
            s = g[key]
            assert s["n"] == 2 and s["lo"] <= s["mean"] <= s["hi"]
    assert len(doc["paired_vs_scratch"]) == 4  # frozen - scratch per model and fraction
    md = (out.root / "summary.md").read_text()
    assert "accuracy [95% CI]" in md and "energy kWh [95% CI]" in md and "paired t p" in md
    html = (out.root / "summary.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert (out.root / "figures" / "accuracy_vs_energy.png").stat().st_size > 1000
    again = recipe.run_sweep(spec, RunOptions(threads=1))  # resume: nothing left to do
    assert again.ran == 0 and again.skipped == 16
    (out.root / "summary.json").unlink()
    assert main(["sweep", "--models", "tinycnn,mobilenet_v3_small", "--strategies", "scratch,frozen",
                 "--fractions", "1,0.5", "--seeds", "0,1", "--weights", "none", "--image-size", "16",
                 "--epochs", "1", "--batch-size", "8", "--out", str(out.root), "--summary-only"]) == 2
    # (the flags lack synthetic_sizes: a different spec, refused) ... the same spec rebuilds it
    assert recipe.summarise_only(spec)["cells"]["ok"] == 16 and (out.root / "summary.json").is_file()


def test_sigkill_mid_sweep_then_rerun_counts_every_cell_once(tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "hackforge_edge", "sweep", "--models", "tinycnn",
            "--strategies", "scratch,frozen", "--fractions", "1,0.5", "--seeds", "0,1",
            "--weights", "none", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
            "--threads", "1", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((out / "cells").glob("*.json"))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done_before = {p.stem for p in (out / "cells").glob("*.json")}
    assert 2 <= len(done_before) < 8
    # a damaged cell file (not through our atomic writer) counts as unfinished, never as a row
    victim = sorted(done_before)[0]
    (out / "cells" / f"{victim}.json").write_text('{"cell_id": "' + victim + '", "status": "o')
    rc = subprocess.run(args, env=env, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    ids = [r["cell_id"] for r in _csv(out / "results.csv")]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert f"{8 - len(done_before) + 1} to run" in rc.stdout


def test_failed_cell_is_recorded_and_retried(tmp_path, monkeypatch):
    spec = _spec(tmp_path, strategies=["scratch"], fractions=[1.0], seeds=[0, 1])
    real = recipe._train_cell

    def flaky(spec_, cell, **kw):
        if cell.seed == 1:
            raise MemoryError("simulated out of memory")
        return real(spec_, cell, **kw)

    monkeypatch.setattr(recipe, "_train_cell", flaky)
    out = recipe.run_sweep(spec, RunOptions(threads=1))
    assert out.ran == 2 and out.failed == 1
    rec = json.loads((out.root / "cells" / "tinycnn__scratch__none__f1__s1.json").read_text())
    assert rec["status"] == "failed" and "simulated out of memory" in rec["error"]
    assert out.summary["failed_cells"][0]["cell_id"] == "tinycnn__scratch__none__f1__s1"
    assert recipe.run_sweep(spec, RunOptions(threads=1)).ran == 0  # failed cells are kept...
    monkeypatch.setattr(recipe, "_train_cell", real)
    again = recipe.run_sweep(spec, RunOptions(threads=1, retry_failed=True))  # ...until retried
    assert again.ran == 1 and again.failed == 0 and again.summary["cells"]["ok"] == 2


@pytest.mark.parametrize("args, message", [
    (["--models", "", "--strategies", "scratch"], "empty grid: no models"),
    (["--models", "tinycnn,nope", "--strategies", "scratch"], "unknown model(s) nope"),
    (["--models", "tinycnn", "--strategies", "magic"], "unknown strategy(ies) magic"),
    (["--models", "tinycnn", "--strategies", "scratch", "--fractions", "0.5,1.5"], "outside (0, 1]: 1.5"),
    (["--models", "tinycnn", "--strategies", "scratch", "--fractions", "0"], "outside (0, 1]: 0.0"),
    (["--models", "tinycnn", "--strategies", "scratch", "--export", "some"], "export"),
    (["--models", "tinycnn", "--strategies", "scratch", "--executor", "ray",
      "--ray-address", "ray://127.0.0.1:1"], "cannot reach 127.0.0.1:1"),
    (["--models", "tinycnn", "--strategies", "scratch", "--jobs", "99"], "--jobs 99"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    if "ray" in args:
        pytest.importorskip("ray")
    out = tmp_path / "never"
    assert main(["sweep", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_directory_holding_another_spec_is_refused_unless_forced(tmp_path):
    first = _spec(tmp_path, strategies=["scratch"], fractions=[1.0], seeds=[0])
    recipe.run_sweep(first, RunOptions(threads=1))
    other = _spec(tmp_path, strategies=["scratch"], fractions=[1.0], seeds=[0, 1])
    with pytest.raises(UsageError, match="holds a different sweep"):
        recipe.run_sweep(other, RunOptions(threads=1))
    forced = recipe.run_sweep(other, RunOptions(threads=1, force=True))
    assert forced.skipped == 1 and forced.ran == 1  # the unchanged cell is kept


def test_yaml_spec_flags_override_and_examples_validate(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("models: [tinycnn]\nstrategies: [scratch, lora]\nweights: none\n")
    spec = SweepSpec.from_yaml(path, seeds=[3])
    assert spec.fractions == [1.0, 0.5, 0.25, 0.1] and spec.seeds == [3] and spec.weights == ["none"]
    assert len(spec.cell_list()) == 8
    matrix = SweepSpec.from_yaml(REPO / "examples/sweeps/seed_matrix.yaml")
    assert len(matrix.cell_list()) == 144
    start = SweepSpec.from_yaml(REPO / "examples/sweeps/imagenet_start.yaml")
    # scratch once per fraction and seed, frozen and finetune from each of the two starts
    assert len(start.cell_list()) == 4 * 3 * (1 + 2 * 2)
    assert Cell("m", "lora", 0.25, 1, "source").id == "m__lora__source__f0.25__s1"
    assert start.result_hash() == SweepSpec.from_yaml(REPO / "examples/sweeps/imagenet_start.yaml",
                                                      out="elsewhere").result_hash()


@pytest.mark.integration  # starts a local Ray instance (~15 s); Ray is the `distributed` extra
def test_ray_rows_match_a_local_run(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    # Ray's workers are started from this process's environment: let them import the package
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec_kw = dict(strategies=["scratch", "frozen"], fractions=[1.0], seeds=[0, 1])
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = recipe.run_sweep(_spec(tmp_path, "ray", **spec_kw),
                                  RunOptions(executor="ray", threads=1))
    finally:
        ray.shutdown()
    print(f"ray sweep incl. start-up: {time.perf_counter() - t0:.1f} s")
    local = recipe.run_sweep(_spec(tmp_path, "local", **spec_kw), RunOptions(threads=1))
    assert remote.ran == local.ran == 4 and remote.failed == 0
    a, b = _csv(remote.root / "results.csv"), _csv(local.root / "results.csv")
    assert [r["cell_id"] for r in a] == [r["cell_id"] for r in b]
    for ra, rb in zip(a, b):
        assert {k: ra[k] for k in COMPARED} == {k: rb[k] for k in COMPARED}
    assert len({r["pid"] for r in a} - {str(os.getpid())}) >= 1  # really ran in Ray workers
    assert SweepDir(remote.root).cells_dir.is_dir()


@pytest.mark.integration
def test_export_best_rebuilds_the_chosen_cell_as_a_bundle(tmp_path):
    spec = SweepSpec.build(models=["tinycnn"], strategies=["scratch", "frozen"], fractions=[1.0],
                           seeds=[0], image_size=16, epochs=1, weights="none", export="best",
                           out=str(tmp_path / "x"))
    out = recipe.run_sweep(spec, RunOptions(threads=1))
    (cid, info), = out.exports.items()
    assert (out.root / info["bundle"] / "manifest.json").is_file()
    assert info["same_accuracy_as_sweep_cell"], info
