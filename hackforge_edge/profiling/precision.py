"""Which precisions to project on which target, and what a bundle's variants kept in accuracy.

``resolve_precisions`` turns ``--precision`` (or its default) into profile -> precisions: by
default every precision the target's engine has a peak for (``peak_tflops`` not null); an
explicit list must be known and runnable on every target asked for, else one line
(:class:`~hackforge_edge.errors.UsageError`, exit 2) before any work.

``bundle_accuracy`` reads what each precision kept on held-out target data: the FP32 model's
accuracy and each variant's from export_validation.json (``variants``, judged there by
``export.validate.validate_variant``), the FP32 one from metrics.json when no variant exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hackforge_edge.errors import UsageError

PRECISIONS = ("fp32", "fp16", "int8")


def parse_precisions(text: str | None) -> list[str] | None:
    """``"fp32,int8"`` -> ["fp32", "int8"]; None or "" -> None (the default); unknown: one line."""
    if text is None or not text.strip():
        return None
    out: list[str] = []
    for part in text.split(","):
        p = part.strip().lower()
        if p not in PRECISIONS:
            raise UsageError(f"unknown precision {part.strip()!r} (known: {', '.join(PRECISIONS)})")
        if p not in out:
            out.append(p)
    return out


def supported_precisions(profile) -> list[str]:
    """The precisions ``profile`` has a peak for (what its engine can run)."""
    return [p for p in PRECISIONS if getattr(profile.peak_tflops, p) is not None]


def resolve_precisions(profiles: Sequence[Any], requested: Sequence[str] | None) -> dict[str, list[str]]:
    """profile name -> precisions to project; see the module doc."""
    out: dict[str, list[str]] = {}
    for prof in profiles:
        can = supported_precisions(prof)
        if requested is None:
            out[prof.name] = can
            continue
        for p in requested:
            if p not in PRECISIONS:
                raise UsageError(f"unknown precision {p!r} (known: {', '.join(PRECISIONS)})")
            if p not in can:
                raise UsageError(f"profile {prof.name} ({prof.engine}) cannot run {p} "
                                 f"(it runs: {', '.join(can)})")
        out[prof.name] = list(requested)
    return out


def bundle_accuracy(bundle) -> tuple[dict, list[dict]]:
    """({precision: PrecisionAccuracy json}, [variant dicts]) of an opened bundle.

    A variant entry: {precision, path (in the bundle), status, reasons, build_method, accuracy}.
    Only variants whose file is present are returned (a rejected one too: its accuracy is
    the reason it is never recommended).
    """
    from hackforge_edge.export.artifact import ExportValidation
    from hackforge_edge.training.artifacts import Metrics

    accuracy: dict[str, dict] = {}
    variants: list[dict] = []
    ev = bundle.read_if_present(ExportValidation)
    for name, v in (ev.variants.items() if ev is not None else ()):
        if name not in PRECISIONS or not (Path(bundle.dir) / f"model.{name}.onnx").is_file():
            continue
        val = v.validation
        acc = val.accuracy
        entry = {"precision": name, "source": f"export_validation.json variants.{name}.validation.accuracy",
                 "accuracy": acc.variant if acc else None, "fp32_accuracy": acc.fp32 if acc else None,
                 "drop_pp": acc.drop_pp if acc else None, "n_samples": acc.n_samples if acc else None,
                 "kind": "measured" if acc else "not checked"}
        accuracy[name] = entry
        if acc is not None and "fp32" not in accuracy:
            accuracy["fp32"] = {"precision": "fp32", "accuracy": acc.fp32, "fp32_accuracy": acc.fp32,
                                "drop_pp": 0.0, "n_samples": acc.n_samples, "kind": "measured",
                                "source": f"export_validation.json variants.{name}.validation.accuracy.fp32"}
        variants.append({"precision": name, "path": f"model.{name}.onnx", "status": val.status,
                         "reasons": list(val.reasons), "build_method": v.build.method,
                         "accuracy": entry})
    if "fp32" not in accuracy:
        m = bundle.read_if_present(Metrics)
        top1 = getattr(m, "accuracy", None) if m is not None else None
        if top1 is not None:
            accuracy["fp32"] = {"precision": "fp32", "accuracy": float(top1), "fp32_accuracy": float(top1),
                                "drop_pp": 0.0, "kind": "measured",
                                "n_samples": m.n,
                                "source": "metrics.json accuracy (PyTorch model, test split)"}
    return accuracy, variants
