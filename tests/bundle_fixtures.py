"""Bundle files for tests, made by the same code and typed models the pipeline uses, so a test
cannot pass on a shape the pipeline never writes.

``metrics`` runs the real ``classification_metrics``; ``training_carbon`` the real
``energy.accounting.training_carbon`` on Measurements; ``export_validation`` builds the typed
model; ``finish`` writes the manifest last with ``bundle.write_manifest``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hackforge_edge import bundle
from hackforge_edge.energy.artifact import TrainingCarbon
from hackforge_edge.export.artifact import ExportValidation
from hackforge_edge.training.artifacts import Metrics

CLASSES = ("benign", "malignant")


def metrics(accuracy: float = 0.9, n: int = 100, class_names: Sequence[str] = CLASSES) -> Metrics:
    """Test-split metrics of a model that is right on round(accuracy * n) of n images."""
    from hackforge_edge.training.metrics import classification_metrics

    c = len(class_names)
    y = np.arange(n) % c
    right = int(round(accuracy * n))
    pred = np.where(np.arange(n) < right, y, (y + 1) % c)
    probs = np.full((n, c), 0.1 / max(c - 1, 1))
    probs[np.arange(n), pred] = 0.9
    doc = classification_metrics(y, probs, class_names=list(class_names))
    return Metrics.from_evaluation({**doc, "loss": 0.5, "eval_duration_s": 0.01}, split="test",
                                   method="PyTorch model on the held-out target-domain test split")


def phase(name: str, energy_j: float | None, *, kind: str = "estimated",
          method: str = "cpu-tdp-estimate", duration_s: float = 10.0):
    from hackforge_edge.energy.meter import Measurement, cache_hit

    if kind == "cache-hit":
        return cache_hit(name, note="weights from cache")
    band = (-0.6, 1.9) if kind == "estimated" else None
    return Measurement(name, duration_s, {"cpu": energy_j} if energy_j is not None else {}, energy_j,
                       None if energy_j is None else energy_j / duration_s, method, kind, band, {})


def training_carbon(kwh: float = 0.001, *, kind: str = "estimated", phases: list | None = None,
                    region: str = "WORLD", **extra: Any) -> TrainingCarbon:
    """training_carbon.json of a run: ``phases`` (Measurements) or one target_transfer phase
    of ``kwh`` (plus any given phases' energy)."""
    from hackforge_edge.energy.accounting import training_carbon as make
    from hackforge_edge.energy.carbon import resolve_grid

    ms = list(phases or [])
    if not any(m.name == "target_transfer" for m in ms):
        ms.append(phase("target_transfer", kwh * 3.6e6, kind=kind))
    return make(ms, resolve_grid(region), extra=extra or None)


def export_validation(max_abs_diff: float = 1e-6, *, passed: bool = True) -> ExportValidation:
    shapes = {"input": [2, 3, 32, 32]}
    return ExportValidation(
        export={"path": "model.onnx", "exporter": "dynamo", "fallback_reason": None, "opset": 18,
                "file_size_bytes": 18_000, "external_data_path": None, "node_count": 8,
                "input_names": ["input"], "output_names": ["logits"],
                "dynamic_axes": {"input": {"0": "batch"}, "logits": {"0": "batch"}},
                "export_input_shapes": shapes, "torch_version": "2", "onnx_version": "1",
                "duration_s": 1.0},
        onnx_path="model.onnx", provider="CPUExecutionProvider", onnxruntime_version="1",
        method="onnxruntime vs PyTorch eager (fp32, eval, inference_mode) on the same inputs",
        atol=1e-4, rtol=1e-3, input_shapes={"input": [3, 3, 32, 32]}, export_input_shapes=shapes,
        shapes_differ_from_export=True, passed=passed,
        outputs={"logits": {"shape": [3, 2], "shape_checked": True, "max_abs_diff": max_abs_diff,
                            "max_rel_diff": max_abs_diff, "finite": True, "passed": passed,
                            "atol": 1e-4, "rtol": 1e-3}})


def params(trainable: int, total: int = 11_000_000, strategy: str = "finetune") -> dict[str, Any]:
    """The keys of strategies.registry.ParamCount.to_json(), as the pipeline writes them."""
    return {"strategy": strategy, "total_params": total, "trainable_params": trainable,
            "frozen_params": total - trainable, "adapter_params": 0, "head_params": 0,
            "deployed_params": total, "trainable_percent": 100.0 * trainable / total,
            "total_fp32_mb": total * 4 / 1e6, "trainable_fp32_mb": trainable * 4 / 1e6,
            "deployed_fp32_mb": total * 4 / 1e6, "lora": None}


def finish(d: Path, *, model: str = "tinycnn", strategy: str = "finetune", seed: int = 0,
           **extra: Any) -> Path:
    """Write manifest.json last (hashing every file in ``d``): the bundle is complete."""
    bundle.write_manifest(d, config={"model": model, "strategy": strategy, "seed": seed}, seed=seed,
                          started_at=bundle.utc_now(), extra=extra or None)
    return d


def flip_one_byte(path: Path, offset: int | None = None) -> None:
    """Change one byte of ``path`` (in the middle by default)."""
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
