"""Profiling: hardware profiles, static ONNX analysis, local measurement, roofline projection.

Public API (stable; everything is imported lazily so ``hf-edge --help`` stays fast)::

    load_profile(name_or_path: str | Path, *, tdp_w: float | None = None) -> HardwareProfile
        Shipped name (``list_profiles()``), ``"local"`` (detected at run time) or a path to
        a user YAML. Unknown name / invalid file -> ProfileError (file + field).
    list_profiles() -> list[str]                      # shipped names + "local", sorted
    analyze(onnx_path, *, batch=1, seq_len=None, input_shapes=None) -> StaticAnalysis
        input_shapes: {"input_name": [1, 3, 224, 224]} (or "name=1x3x224x224" strings)
    measure(onnx_path, *, batch_sizes=(1, 4, 8), warmup=3, runs=20, providers=None,
            seq_len=None, input_shapes=None, meter=None, threads=None) -> LocalMeasurement
    project(static, profile, *, mode=None, precision="fp32", batch=1,
            calibration=None) -> Projection
        ``static`` must be analysed at the same batch (``batch`` is checked against it).
    load_calibration(profile: HardwareProfile) -> Calibration | None
        The stored fit for that profile (user cache dir), or for ort-cpu profiles other
        than ``local`` the local ort-cpu fit as a prior with a widened band.
    profile_model(onnx_path, profiles: list[str], *, batch_sizes=(1, 4, 8), seq_len=None,
                  input_shapes=None, meter=None, precisions=("fp32",), all_modes=False,
                  measure_local=True, runs=None, warmup=None) -> Profile   # profile.json

Every result has ``to_json() -> dict`` (plain JSON types, no NaN). ``profile_model`` returns
the typed :class:`~hackforge_edge.profiling.artifact.Profile` (profile.json; its fields and
their units are documented on the model, and ``hf-edge schema`` prints its JSON Schema).
Before any work, :mod:`~hackforge_edge.profiling.preflight` checks the ONNX file and the
profile names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hackforge_edge.profiling.artifact import Profile
    from hackforge_edge.profiling.calibrate import Calibration
    from hackforge_edge.profiling.hardware import HardwareProfile
    from hackforge_edge.profiling.measure import LocalMeasurement
    from hackforge_edge.profiling.project import Projection
    from hackforge_edge.profiling.static import StaticAnalysis

__all__ = [
    "load_profile", "list_profiles", "analyze", "measure", "project", "load_calibration",
    "profile_model",
]


def load_profile(name_or_path, *, tdp_w: float | None = None) -> "HardwareProfile":
    from hackforge_edge.profiling.hardware import load_profile as _f
    return _f(name_or_path, tdp_w=tdp_w)


def list_profiles() -> list[str]:
    from hackforge_edge.profiling.hardware import list_profiles as _f
    return _f()


def analyze(onnx_path, *, batch: int = 1, seq_len: int | None = None,
            input_shapes=None) -> "StaticAnalysis":
    from hackforge_edge.profiling.static import analyze as _f
    return _f(onnx_path, batch=batch, seq_len=seq_len, input_shapes=input_shapes)


def measure(onnx_path, **kwargs: Any) -> "LocalMeasurement":
    from hackforge_edge.profiling.measure import measure as _f
    return _f(onnx_path, **kwargs)


def project(static, profile, **kwargs: Any) -> "Projection":
    from hackforge_edge.profiling.project import project as _f
    return _f(static, profile, **kwargs)


def load_calibration(profile) -> "Calibration | None":
    from hackforge_edge.profiling.calibrate import load_calibration as _f
    return _f(profile)


def profile_model(onnx_path, profiles: list[str], **kwargs: Any) -> "Profile":
    from hackforge_edge.profiling.profiler import profile_model as _f
    return _f(onnx_path, profiles, **kwargs)
