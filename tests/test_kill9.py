"""Kill -9 a real ``train-and-export``: ``serve``, ``report`` and ``profile`` refuse what it
leaves behind, and a complete bundle with one byte changed in ``model.onnx``, with exit code 2
and one line (issue 8's acceptance).

One subprocess run (tinycnn, tiny settings) is watched by polling its directory. Every bundle
file is written atomically (temp file + rename), so a copy of the directory taken at an instant
holds exactly what a ``kill -9`` at that instant would leave: each file whole or absent. Copies
are taken at three points, and the run itself gets a real SIGKILL at the fourth.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import bundle_fixtures as fx
import pytest

from hackforge_edge import bundle
from hackforge_edge.cli import main

TINY = ["--model", "tinycnn", "--weights", "none", "--epochs", "2", "--image-size", "32",
        "--batch-size", "16", "--data-fraction", "0.5", "--profile", "local", "--quiet"]
REPO = Path(__file__).resolve().parents[1]


def _interrupted_runs(tmp_path: Path) -> dict[str, Path]:
    """Run train-and-export in a subprocess; return the directories left at four points."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hackforge_edge", "train-and-export", *TINY,
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    left: dict[str, Path] = {}

    def snapshot(name: str) -> None:
        # temp files of an atomic write in progress are renamed away under us: not part of a state
        left[name] = shutil.copytree(out, tmp_path / name, ignore=shutil.ignore_patterns(".*.tmp"))

    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            files = set(os.listdir(out)) if out.is_dir() else None
            if files is not None:
                # the directory exists from the start of training; metrics.json ends it
                if "during-training" not in left and "metrics.json" not in files:
                    snapshot("during-training")
                # model.onnx written, not validated yet
                if ("after-export" not in left and "model.onnx" in files
                        and "export_validation.json" not in files):
                    snapshot("after-export")
                # validated: profiling starts right after export_validation.json is written
                if "export_validation.json" in files:
                    snapshot("after-validation")
                    time.sleep(0.3)
                    os.kill(proc.pid, signal.SIGKILL)  # the real kill -9, during profiling
                    break
            if proc.poll() is not None:
                pytest.fail(f"train-and-export ended before it could be killed: {proc.stderr.read()}")
            time.sleep(0.005)
        else:
            pytest.fail("train-and-export did not reach validation in time")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # killed inside profiling: profile.json, training_carbon.json and the manifest never came
    assert not any((out / n).exists() for n in ("profile.json", "training_carbon.json", "manifest.json"))
    left["during-profiling"] = out
    missing = {"during-training", "after-export"} - set(left)
    assert not missing, f"polling missed {missing}"
    return left


def _refusal(capsys, args: list[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, code, err)
    return lines[0]


def test_kill_9_leaves_bundles_every_reader_refuses(tmp_path, capsys):
    left = _interrupted_runs(tmp_path)
    assert not any(left["during-training"].iterdir())
    assert (left["after-export"] / "model.onnx").is_file()
    assert (left["after-validation"] / "export_validation.json").is_file()

    # a complete bundle (the killed run's files, finished by the pipeline's manifest writer),
    # then one byte of model.onnx changed
    changed = shutil.copytree(left["during-profiling"], tmp_path / "changed")
    fx.finish(changed)
    bundle.Bundle.open(changed)  # verifies before the change
    fx.flip_one_byte(changed / "model.onnx")

    for name, d in {**left, "changed": changed}.items():
        for args in (["serve", str(d), "--port", "0"], ["report", str(d)],
                     ["profile", str(d), "--profile", "local", "--runs", "1", "--warmup", "0"]):
            line = _refusal(capsys, args)
            if name == "changed":
                assert "model.onnx: sha256 differs from the manifest" in line, (args, line)
            else:
                assert "incomplete bundle" in line and "re-run, or pass --allow-incomplete" in line, \
                    (name, args, line)
        assert not (d / "profile.json").exists()  # refused before any work
    # the model file inside an interrupted run is refused too, not served as a bare model
    assert "incomplete bundle" in _refusal(capsys, ["serve", str(left["after-validation"] / "model.onnx")])
