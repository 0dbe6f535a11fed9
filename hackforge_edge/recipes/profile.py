"""The profile recipe: profile -> feasibility -> report, in one direction.

``run_profile`` profiles an ONNX file or a bundle on the given hardware profiles, judges the
requirements, writes profile.json + feasibility.json (into the bundle, ``out`` or next to the
model) and, for a bundle or on request, the report. ``profile_and_report`` is the same for a
bundle, always with the report. Both take typed values; parsing command-line text is the
CLI's job (:mod:`hackforge_edge.cli._options`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError

if TYPE_CHECKING:  # pragma: no cover  (kept out of import time: `hf-edge --help` stays light)
    from hackforge_edge.energy.carbon import GridSpec
    from hackforge_edge.feasibility.artifact import Feasibility
    from hackforge_edge.feasibility.config import FeasibilityConfig
    from hackforge_edge.feasibility.requirements import Requirements
    from hackforge_edge.profiling.artifact import Profile

DEFAULT_PROFILES = ("local", "nvidia-t4", "jetson-orin-nano-8gb", "raspberry-pi-5")
DEFAULT_BATCH_SIZES = (1, 4, 8)


@dataclass
class ProfileResult:
    profile: Profile
    feasibility: Feasibility
    grid: GridSpec
    out_dir: Path
    is_bundle: bool
    paths: dict[str, Path]

    def to_json(self) -> dict:
        return {"profile": self.profile.to_json(), "feasibility": self.feasibility.to_json(),
                "out_dir": str(self.out_dir), "is_bundle": self.is_bundle,
                "paths": {k: str(v) for k, v in self.paths.items()}}


def run_profile(target: str | os.PathLike, profiles: Sequence[str], requirements: Requirements, *,
                out: str | os.PathLike | None = None, report: bool | None = None, meter: Any = None,
                batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, seq_len: int | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                comparison_rows: Sequence[Mapping] | None = None, runs: int | None = None,
                warmup: int | None = None, all_modes: bool = True,
                config: FeasibilityConfig | None = None, allow_incomplete: bool = False,
                precisions: Sequence[str] | None = None) -> ProfileResult:
    """Profile ``target`` (bundle dir or .onnx), judge it, write the results; see module doc.

    ``report`` None means "yes for a bundle, no for a bare model file". ``all_modes`` projects
    every power mode of each profile (a verdict per profile and mode), else its default mode.
    ``precisions`` None: every precision each target's engine runs; a list: exactly those
    (a target that cannot run one is refused). A bundle's FP16/INT8 variants are measured here
    and their accuracy on target data recorded, so the verdict can recommend a precision.
    Every input is checked before anything is measured or written.
    """
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.feasibility.verdict import evaluate
    from hackforge_edge.profiling.preflight import check_onnx, check_profiles
    from hackforge_edge.profiling.profiler import profile_model

    # verified before any work; the files this call rewrites in the bundle need not match
    rewrites = () if out is not None else ("profile.json", "feasibility.json") + (
        ("report.*", "figures/*") if report is not False else ())
    ref = bundle.open_model(target, allow_incomplete=allow_incomplete, rewrites=rewrites)
    check_onnx(ref.onnx_path)
    names = check_profiles(list(profiles))
    from hackforge_edge.profiling.hardware import load_profile
    from hackforge_edge.profiling.precision import bundle_accuracy, resolve_precisions

    loaded = [load_profile(n) for n in names]
    per_profile = resolve_precisions(loaded, precisions)
    _check_price_override(requirements, [p.name for p in loaded])
    accuracy, variants = bundle_accuracy(ref.bundle) if ref.bundle is not None else ({}, [])
    if precisions is not None:          # measure only the variants asked for (fp32 is the reference)
        variants = [v for v in variants if v["precision"] in precisions]
    for v in variants:
        v["file"] = ref.bundle.dir / v["path"]
    grid = resolve_grid(requirements.region, requirements.grid_intensity_g_per_kwh, requirements.pue)

    is_bundle = ref.bundle_dir is not None
    if seq_len is None and is_bundle:  # a text bundle is profiled at the max length it serves
        pre = ref.bundle.read_json_if_present("preprocess.json") or {}
        seq_len = pre.get("max_length") if isinstance(pre.get("max_length"), int) else None
    out_dir = Path(out) if out is not None else (ref.bundle_dir if is_bundle else ref.onnx_path.parent)
    profile = profile_model(ref.onnx_path, names, batch_sizes=batch_sizes, seq_len=seq_len,
                            input_shapes=input_shapes, meter=meter, all_modes=all_modes,
                            runs=runs, warmup=warmup, precisions=per_profile,
                            accuracy=accuracy, variants=variants)
    feasibility = evaluate(profile, requirements, grid, config)
    paths: dict[str, Path] = {"profile": profile.write(out_dir), "feasibility": feasibility.write(out_dir)}
    if report if report is not None else is_bundle:
        from hackforge_edge.report.build import build_report

        paths.update(build_report(ref.bundle_dir or out_dir, profile=profile, feasibility=feasibility,
                                  comparison_rows=comparison_rows, out_dir=out_dir))
    if is_bundle and out_dir == ref.bundle_dir:
        # a finished bundle stays verifiable: its manifest re-hashes what this command wrote
        ref.bundle.refresh_manifest(command="hf-edge profile", rewritten=paths.values())
    return ProfileResult(profile=profile, feasibility=feasibility, grid=grid, out_dir=out_dir,
                         is_bundle=is_bundle, paths=paths)


def _check_price_override(requirements: Requirements, names: Sequence[str]) -> None:
    from hackforge_edge.errors import RequirementsError
    from hackforge_edge.feasibility.points import MEASURED_PROFILE

    known = [*names, MEASURED_PROFILE]
    unknown = sorted(set(requirements.price_override or {}) - set(known))
    if unknown:
        raise RequirementsError(f"price_override names {', '.join(unknown)}: not a profile of this run "
                                f"(profiles: {', '.join(known)})")


def profile_and_report(bundle_dir: str | os.PathLike, profiles: Sequence[str] = DEFAULT_PROFILES,
                       requirements: Requirements | None = None, **kwargs: Any) -> ProfileResult:
    """Profile a bundle's model and write profile.json, feasibility.json, report.{json,md,html}
    and figures/ into the bundle. ``requirements`` None means the defaults; ``kwargs`` as for
    :func:`run_profile`."""
    from hackforge_edge.feasibility.requirements import Requirements

    if not Path(bundle_dir).is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle directory")
    return run_profile(bundle_dir, profiles, requirements or Requirements(), report=True, **kwargs)
