"""`hf-edge profile` and `hf-edge report` with the base install only (no train extra).

Default test: the real CLI in a subprocess where torch, matplotlib, scipy & co. cannot be
imported (a ``sitecustomize`` puts ``None`` in ``sys.modules`` for them, so any import raises
ImportError), on a bundle whose model is built with ``onnx.helper`` (no torch here either).
Opt-in (``-m slow``): a fresh venv with ``pip install .`` from PyPI, then the same commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# everything outside the base dependencies that the package uses somewhere
NOT_BASE = ("torch", "torchvision", "transformers", "peft", "onnxscript", "matplotlib", "scipy",
            "sklearn", "skl2onnx")
EXTRA_HINT = "pip install 'hackforge-edge[report]'"


def _tiny_bundle(d: Path) -> Path:
    """A complete bundle (model.onnx + manifest) whose model is a Conv-Relu-Pool-Gemm graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hackforge_edge import bundle

    rng = np.random.default_rng(0)
    w = lambda name, shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [w("w1", [4, 3, 3, 3]), w("wf", [2, 4])])
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              str(d / "model.onnx"))
    bundle.write_manifest(d, config={"model": "tiny", "strategy": "none"}, seed=0, started_at=bundle.utc_now())
    return d


def _run(cmd: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _profile_then_report(hf_edge: list[str], bundle_dir: Path, env: dict[str, str]) -> None:
    r = _run([*hf_edge, "profile", str(bundle_dir), "--profile", "nvidia-t4", "--profile", "local",
              "--batch-sizes", "1", "--runs", "3", "--warmup", "0", "--max-latency-ms", "100"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    notes = [ln for ln in r.stderr.splitlines() if EXTRA_HINT in ln]
    assert len(notes) == 1, r.stderr[-3000:]                       # one line naming the extra
    assert "Traceback" not in r.stderr
    html = (bundle_dir / "report.html").read_text()
    assert "figures not drawn" in html and "hackforge-edge[report]" in html and "PASS" in html
    assert not (bundle_dir / "figures").exists()
    (bundle_dir / "report.html").unlink()
    r = _run([*hf_edge, "report", str(bundle_dir)], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (bundle_dir / "report.html").is_file() and "Traceback" not in r.stderr
    assert sum(EXTRA_HINT in ln for ln in r.stderr.splitlines()) == 1


def test_profile_and_report_without_the_train_extra(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        for name in {NOT_BASE!r}:
            sys.modules[name] = None   # any import of them now raises ImportError
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_EDGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(REPO)])
    env["HF_EDGE_CACHE"] = str(tmp_path / "cache")
    check = _run([sys.executable, "-c", "import matplotlib"], env)
    assert check.returncode != 0 and "halted; None in sys.modules" in check.stderr  # shim in force
    _profile_then_report([sys.executable, "-m", "hackforge_edge"], _tiny_bundle(tmp_path / "run"), env)


@pytest.mark.slow
def test_fresh_venv_with_pip_install_dot(tmp_path):
    """The real thing: `pip install .` into an empty venv (needs PyPI; a few minutes)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "hackforge_edge", src / "hackforge_edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    r = _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
             dict(os.environ), timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    probe = "import importlib.util as u; print(','.join(m for m in %r if u.find_spec(m)))" % (NOT_BASE,)
    assert _run([str(py), "-c", probe], dict(os.environ)).stdout.strip() == ""   # no extra installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_EDGE_", "PYTHON"))}
    env["HF_EDGE_CACHE"] = str(tmp_path / "cache")
    _profile_then_report([str(venv / "bin" / "hf-edge")], _tiny_bundle(tmp_path / "run"), env)
