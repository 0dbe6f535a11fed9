"""``profile_model``: static analysis + local measurement + projections -> a :class:`Profile`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from hackforge_edge.errors import ProfileError
from hackforge_edge.profiling.artifact import (
    LocalMeasurement,
    ModelInfo,
    PrecisionAccuracy,
    Profile,
    ProjectionRecord,
    SkippedProjection,
    StaticRecord,
    VariantProfile,
)


def model_info(onnx_path) -> ModelInfo:
    """File size (incl. external data), opset, producer and the declared inputs/outputs."""
    from hackforge_edge.profiling.shapes import graph_inputs, load_onnx, opset_of

    path = Path(onnx_path)
    model = load_onnx(path)

    def _io(vi):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim] if tt.HasField("shape") else None
        from onnx import helper
        try:
            dtype = str(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except KeyError:  # undefined / sequence types have no numpy dtype
            dtype = str(tt.elem_type)
        return {"name": vi.name, "shape": dims, "dtype": dtype}

    external = set()
    for init in model.graph.initializer:
        for kv in init.external_data:
            if kv.key == "location":
                external.add(kv.value)
    size = path.stat().st_size + sum((path.parent / f).stat().st_size for f in external
                                     if (path.parent / f).is_file())
    return ModelInfo.model_validate({
        "path": str(path), "bytes": int(size), "external_data": sorted(external),
        "opset": opset_of(model), "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [_io(i) for i in graph_inputs(model)],
        "outputs": [_io(o) for o in model.graph.output]})


def profile_model(onnx_path: str | os.PathLike, profiles: Sequence[str], *,
                  batch_sizes: Sequence[int] = (1, 4, 8), seq_len: int | None = None,
                  input_shapes: Mapping[str, Sequence[int]] | None = None, meter=None,
                  precisions: Sequence[str] | Mapping[str, Sequence[str]] = ("fp32",),
                  all_modes: bool = False, measure_local: bool = True, runs: int | None = None,
                  warmup: int | None = None, progress: Callable[[str], None] | None = None,
                  accuracy: Mapping[str, Mapping] | None = None,
                  variants: Sequence[Mapping] = ()) -> Profile:
    """Static analysis at each batch size, the local measurement, and a projection per
    (hardware profile, power mode, precision, batch): the content of profile.json.

    Projections use each profile's stored calibration when there is one (see
    :func:`~hackforge_edge.profiling.calibrate.load_calibration`), else its priors. A target
    that cannot run a precision is listed under ``skipped`` with the reason.
    """
    from hackforge_edge.bundle import utc_now
    from hackforge_edge.profiling.hardware import load_profile
    from hackforge_edge.profiling.measure import measure
    from hackforge_edge.profiling.static import analyze

    say = progress or (lambda msg: None)
    batch_sizes = sorted({int(b) for b in batch_sizes})
    shapes = {k: list(v) for k, v in input_shapes.items()} if input_shapes else None
    loaded = [load_profile(p) for p in profiles]          # fail early on a bad name
    info = model_info(onnx_path)
    statics = {}
    for b in batch_sizes:
        say(f"static analysis at batch {b}")
        statics[b] = analyze(onnx_path, batch=b, seq_len=seq_len, input_shapes=shapes)
    local = None
    if measure_local:
        say("measuring on this machine")
        local = measure(onnx_path, batch_sizes=batch_sizes, seq_len=seq_len,
                        input_shapes=shapes, meter=meter,
                        runs=runs if runs is not None else 50,
                        warmup=warmup if warmup is not None else 2, max_seconds_per_batch=5.0)
    per_profile = ({p.name: list(precisions.get(p.name, ("fp32",))) for p in loaded}
                   if isinstance(precisions, Mapping) else {p.name: list(precisions) for p in loaded})
    projections, skipped = _project_all(statics, loaded, per_profile, all_modes)
    measured_variants = {}
    for v in variants:
        vlocal = None
        if measure_local:
            say(f"measuring the {v['precision']} variant on this machine")
            vlocal = measure(v["file"], batch_sizes=batch_sizes, seq_len=seq_len,
                             input_shapes=shapes, meter=meter,
                             runs=runs if runs is not None else 50,
                             warmup=warmup if warmup is not None else 2, max_seconds_per_batch=5.0)
        measured_variants[v["precision"]] = VariantProfile.model_validate({
            **{k: x for k, x in v.items() if k != "file"},
            "local": vlocal.to_json() if vlocal is not None else None})
    return Profile(
        generated_at=utc_now(), model=info,
        static={str(b): StaticRecord.model_validate(s.to_json()) for b, s in statics.items()},
        local=LocalMeasurement.model_validate(local.to_json()) if local is not None else None,
        projections=projections, skipped=skipped,
        profiles={p.name: p for p in loaded}, precisions=per_profile,
        accuracy={k: PrecisionAccuracy.model_validate(a) for k, a in (accuracy or {}).items()},
        variants=measured_variants,
    )


def _project_all(statics: dict, loaded: list, precisions: Mapping[str, Sequence[str]],
                 all_modes: bool) -> tuple[list[ProjectionRecord], list[SkippedProjection]]:
    """Every (profile, mode, precision, batch) projection; the impossible ones as skipped."""
    from hackforge_edge.profiling.calibrate import load_calibration
    from hackforge_edge.profiling.project import project

    projections, skipped = [], []
    for prof in loaded:
        cal = load_calibration(prof)
        modes = [m.name for m in prof.power_modes] if all_modes else [prof.default_mode]
        for mode in modes:
            for precision in precisions[prof.name]:
                for b, static in statics.items():
                    try:
                        pj = project(static, prof, mode=mode, precision=precision,
                                     batch=b, calibration=cal)
                    except ProfileError as exc:
                        skipped.append(SkippedProjection(profile=prof.name, mode=mode,
                                                         precision=precision, batch=b, reason=str(exc)))
                        continue
                    projections.append(ProjectionRecord.model_validate(
                        {**pj.to_json(), "default_mode": mode == prof.default_mode}))
    return projections, skipped
