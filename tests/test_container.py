"""Opt-in (``-m container``): build docker/Dockerfile.cpu with podman and serve from the image.

Runs docker/check_cpu_image.sh on a tiny CNN bundle. Needs root, apt access (podman,
debootstrap, runc) and a few minutes; see shared notes on containers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from hackforge_edge.bundle import write_manifest
from hackforge_edge.data.preprocess import ImagePreprocess

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]


def make_bundle(out: Path) -> Path:
    import torch

    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    out.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 48, 48),), str(out / "model.onnx"), dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    (out / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    (out / "preprocess.json").write_text(json.dumps(ImagePreprocess(image_size=(48, 48)).to_json()))
    # written last by the pipeline's writer: the image's `hf-edge serve` verifies the bundle
    write_manifest(out, config={"model": "tiny_cnn", "strategy": "finetune"}, seed=0,
                   started_at="2025-01-01T00:00:00+00:00")
    return out


def test_cpu_image_builds_and_serves_a_correct_prediction(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for podman image mount and chroot")
    if not shutil.which("podman") and not shutil.which("apt-get"):
        pytest.skip("neither podman nor apt-get available")
    bundle = make_bundle(tmp_path / "bundle")
    proc = subprocess.run(["bash", str(REPO / "docker" / "check_cpu_image.sh"), str(bundle)],
                          capture_output=True, text=True, timeout=3600, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "[check_cpu_image] OK" in out and "max |p_server - p_onnxruntime|" in out


def test_cpu_image_serves_a_text_bundle(tmp_path):
    """The same check on a text bundle: tokenizer.json + {"texts": [...]}, no torch in the image."""
    if os.geteuid() != 0:
        pytest.skip("needs root for podman image mount and chroot")
    if not shutil.which("podman") and not shutil.which("apt-get"):
        pytest.skip("neither podman nor apt-get available")
    from test_text_serving import make_text_bundle

    bundle = make_text_bundle(tmp_path / "text-bundle")
    proc = subprocess.run(["bash", str(REPO / "docker" / "check_cpu_image.sh"), str(bundle)],
                          capture_output=True, text=True, timeout=3600, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "[check_cpu_image] OK" in out and "max |p_server - p_onnxruntime|" in out
