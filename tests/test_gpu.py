"""Opt-in checks on a real NVIDIA GPU (``pytest -m gpu``); skipped where there is none.

Issue 4 asks for the NVML backend run for real on a short training run: this is that run.
It prints the measured joules and method (``pytest -m gpu -s`` shows them).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - depends on the machine
    pytest.skip("no CUDA device", allow_module_level=True)


def test_nvml_meters_a_short_training_run():
    from hackforge_edge.energy.meter import make_meter

    meter = make_meter("cuda", sync=torch.cuda.synchronize)
    model = torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 2048)).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(512, 2048, device="cuda")
    meter.begin("train")
    for _ in range(300):
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
    m = meter.end("train")
    gpu_j = {k: v for k, v in m.energy_j.items() if k.startswith("gpu")}
    print(f"\nNVML: {m.method} kind={m.kind} duration={m.duration_s:.2f} s "
          f"gpu energy={gpu_j} J avg power={m.avg_power_w} W details={m.details}")
    assert gpu_j and all(v > 0 for v in gpu_j.values())
    assert "nvml" in m.method


def test_cuda_training_and_onnxruntime_cuda_provider(tmp_path):
    """The CUDA execution provider, when onnxruntime-gpu is installed."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider")
    from hackforge_edge.serving.providers import resolve_providers

    assert resolve_providers(["cuda", "cpu"])[0] == "CUDAExecutionProvider"
