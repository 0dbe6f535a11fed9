"""profile -> feasibility -> report, as library functions (the CLI and train-and-export call these).

``run_profile`` profiles an ONNX file or a bundle on the given hardware profiles, evaluates the
requirements, writes profile.json + feasibility.json (into the bundle, ``out`` or next to the
model) and, for a bundle or on request, the report. ``profile_and_report`` is the call the
train-and-export pipeline makes at its end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hackforge_edge import bundle
from hackforge_edge.errors import ModelFileError, ProfileError, UsageError

DEFAULT_PROFILES = ("local", "nvidia-t4", "jetson-orin-nano-8gb", "raspberry-pi-5")
DEFAULT_BATCH_SIZES = (1, 4, 8)


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """"1,4,8" -> (1, 4, 8); every size a positive integer."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        try:
            b = int(str(item).strip())
        except ValueError:
            raise UsageError(f"--batch-sizes: {item!r} is not an integer (expected e.g. 1,4,8)") from None
        if b < 1:
            raise UsageError(f"--batch-sizes: batch size must be >= 1, got {b}")
        if b not in out:
            out.append(b)
    if not out:
        raise UsageError("--batch-sizes: give at least one batch size (e.g. 1,4,8)")
    return tuple(out)


def parse_input_shapes(items: Sequence[str] | None) -> dict[str, list[int]] | None:
    """["input=1x3x224x224", ...] -> {"input": [1, 3, 224, 224]}."""
    if not items:
        return None
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = [int(d) for d in dims.lower().replace(",", "x").split("x")] if sep else []
        except ValueError:
            shape = []
        if not name.strip() or not shape or any(d < 1 for d in shape):
            raise UsageError(f"--input-shape {item!r}: expected NAME=DxDx... with positive integers "
                             "(e.g. input=1x3x224x224)")
        shapes[name.strip()] = shape
    return shapes


def check_onnx(path: Path) -> None:
    """Fail early with one line when the file is not a readable ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on bad bytes
        raise ModelFileError(f"{path}: not a readable ONNX model (truncated or corrupt?): "
                             f"{type(exc).__name__}") from None
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"{path}: ONNX file has an empty graph (truncated or corrupt?)")


def check_profiles(names: Sequence[str]) -> list[str]:
    """Known names or existing YAML paths; an unknown one lists the known names."""
    from hackforge_edge.profiling import list_profiles

    if not names:
        raise UsageError("no hardware profile given (use --profile NAME_OR_YAML)")
    known = list_profiles()
    for n in names:
        looks_like_path = n.endswith((".yaml", ".yml")) or os.sep in n
        if looks_like_path:
            if not Path(n).is_file():
                raise ProfileError(f"profile file {n}: not found")
        elif n not in known:
            raise ProfileError(f"unknown profile {n!r} (known: {', '.join(known)}; or pass a YAML path)")
    return list(names)


@dataclass
class ProfileResult:
    profile: dict
    feasibility: dict
    grid: Any
    out_dir: Path
    is_bundle: bool
    paths: dict[str, Path]

    def to_json(self) -> dict:
        return {"profile": self.profile, "feasibility": self.feasibility, "out_dir": str(self.out_dir),
                "is_bundle": self.is_bundle, "paths": {k: str(v) for k, v in self.paths.items()}}


def run_profile(target: str | os.PathLike, profiles: Sequence[str], requirements: Any = None, *,
                out: str | os.PathLike | None = None, report: bool | None = None, meter: Any = None,
                batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, seq_len: int | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                comparison_rows: Sequence[Mapping] | None = None, runs: int | None = None,
                warmup: int | None = None, all_modes: bool = True, config: Any = None) -> ProfileResult:
    """Profile ``target`` (bundle dir or .onnx), judge it, write the results; see module doc.

    ``report`` None means "yes for a bundle, no for a bare model file". ``all_modes`` projects
    every power mode of each profile (a verdict per profile and mode), else its default mode.
    """
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.feasibility.verdict import evaluate
    from hackforge_edge.profiling import profile_model
    from hackforge_edge.feasibility.requirements import Requirements, load_requirements

    req = requirements if isinstance(requirements, Requirements) else load_requirements(**dict(requirements or {}))
    ref = bundle.resolve_model(target)
    check_onnx(ref.onnx_path)
    names = check_profiles(list(profiles))
    batch_sizes = parse_batch_sizes(batch_sizes)
    grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)

    is_bundle = ref.bundle_dir is not None
    if seq_len is None and is_bundle:  # a text bundle is profiled at the max length it serves
        pre = ref.read_sidecar("preprocess.json") or {}
        seq_len = pre.get("max_length") if isinstance(pre.get("max_length"), int) else None
    out_dir = Path(out) if out is not None else (ref.bundle_dir if is_bundle else ref.onnx_path.parent)
    kwargs: dict[str, Any] = {"batch_sizes": batch_sizes, "seq_len": seq_len,
                              "input_shapes": dict(input_shapes) if input_shapes else None, "meter": meter,
                              "all_modes": all_modes}
    if runs is not None:
        kwargs["runs"] = runs
    if warmup is not None:
        kwargs["warmup"] = warmup
    profile_json = profile_model(str(ref.onnx_path), names, **kwargs)
    feasibility = evaluate(profile_json, req, grid, config)

    paths: dict[str, Path] = {
        "profile": bundle.atomic_write_json(out_dir / "profile.json", profile_json),
        "feasibility": bundle.atomic_write_json(out_dir / "feasibility.json", feasibility),
    }
    if report if report is not None else is_bundle:
        from hackforge_edge.report.build import build_report

        paths.update(build_report(ref.bundle_dir or out_dir, profile=profile_json, feasibility=feasibility,
                                  comparison_rows=comparison_rows, out_dir=out_dir))
    if is_bundle and out_dir == ref.bundle_dir:
        # a finished bundle stays verifiable: its manifest re-hashes what was rewritten
        bundle.refresh_manifest(out_dir, command="hf-edge profile")
    return ProfileResult(profile=profile_json, feasibility=feasibility, grid=grid, out_dir=out_dir,
                         is_bundle=is_bundle, paths=paths)


def profile_and_report(bundle_dir: str | os.PathLike, profiles: Sequence[str] = DEFAULT_PROFILES,
                       requirements: Any = None, *, meter: Any = None,
                       batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, **kwargs: Any) -> dict:
    """End of train-and-export: profile the bundle's model, write profile.json, feasibility.json,
    report.{json,md,html} and figures/ into the bundle. ``requirements``: a Requirements, a dict
    of its fields, or None (defaults). Returns ``{"profile", "feasibility", "out_dir", "paths"}``."""
    if not Path(bundle_dir).is_dir():
        from hackforge_edge.errors import BundleError
        raise BundleError(f"{bundle_dir}: not a bundle directory")
    result = run_profile(bundle_dir, profiles, requirements, meter=meter, batch_sizes=batch_sizes,
                         report=True, **kwargs)
    return result.to_json()
