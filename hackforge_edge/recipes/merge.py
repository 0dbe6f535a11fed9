"""``hf-edge merge``: fine-tunes of one base -> one merged model, exported like any other.

open inputs (verified) -> check architecture, base hash, settings -> load the base -> task
vectors -> merge (PEFT merge_utils / SLERP) -> multi-head model (shared backbone, every head)
-> BatchNorm re-estimated on the tasks' training images -> every input, the base and the
merge evaluated on every task's test split -> export (one output per task) -> validate ->
variants -> profile -> feasibility -> report -> manifest (written last).

Every bad input fails with one line before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError, UsageError
from hackforge_edge.export.artifact import ExportValidation
from hackforge_edge.recipes.profile import DEFAULT_PROFILES
from hackforge_edge.training.artifacts import Metrics


@dataclass
class MergeConfig:
    """Everything ``merge`` needs; recorded verbatim in the manifest."""

    inputs: tuple[str, ...] = ()
    method: str = "task_arithmetic"
    weights: tuple[float, ...] | None = None
    density: float = 0.5
    lam: float = 1.0
    seed: int = 0
    base: str | None = None
    update_bn: bool = True
    bn_images_per_task: int = 256
    device: str = "cpu"
    exporter: str = "auto"   # auto (dynamo, then legacy) | dynamo | legacy
    variants: tuple[str, ...] = ()
    profiles: tuple[str, ...] = DEFAULT_PROFILES
    skip_profile: bool = False
    region: str | None = None
    grid_intensity: float | None = None
    pue: float | None = None
    requirements: dict[str, Any] = field(default_factory=dict)
    requirements_file: str | None = None
    tdp_w: float | None = None
    out: str | None = None
    overwrite: bool = False

    def settings(self):
        from hackforge_edge.merging.methods import MergeSettings

        return MergeSettings(self.method, len(self.inputs), self.weights, self.density, self.lam, self.seed)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("inputs", "variants", "profiles"):
            d[k] = list(d[k]) if d[k] is not None else None
        d["weights"] = list(self.weights) if self.weights is not None else None
        return d


@dataclass
class _Input:
    bundle: Any
    name: str
    model: str
    labels: list[str]
    base_sha256: str
    config: dict[str, Any]


def _open_inputs(cfg: MergeConfig) -> list[_Input]:
    from hackforge_edge.bundle.reader import Bundle
    from hackforge_edge.models.weights_file import WEIGHTS

    out = []
    for p in cfg.inputs:
        b = Bundle.open(p)  # refuses an incomplete bundle or one whose files changed
        m = b.manifest.to_json()   # typed Manifest -> plain JSON for the lookups below
        if not b.has(WEIGHTS):
            raise BundleError(f"{b.dir}: no {WEIGHTS} (the fine-tuned PyTorch weights); re-run "
                              "train-and-export with this version of hf-edge")
        base = (m.get("weights") or {}).get("base_sha256")
        if not base:
            raise BundleError(f"{b.dir}: manifest records no weights.base_sha256 (the starting "
                              "weights' hash); re-run train-and-export with this version of hf-edge")
        out.append(_Input(b, b.dir.name, (m.get("config") or {}).get("model"),
                          [str(x) for x in b.read_json(bundle.LABELS)], base, m.get("config") or {}))
    models = sorted({i.model for i in out})
    if len(models) > 1:
        raise UsageError(f"inputs have different architectures ({', '.join(map(str, models))}); "
                         "only fine-tunes of one architecture merge")
    bases = sorted({i.base_sha256 for i in out})
    if len(bases) > 1:
        raise UsageError(f"inputs were fine-tuned from different bases (base_sha256 "
                         f"{', '.join(b[:12] for b in bases)}); only fine-tunes of one base merge")
    sizes = sorted({int(i.config.get("image_size", 0)) for i in out})
    if len(sizes) > 1:
        raise UsageError(f"inputs were trained at different image sizes {sizes}")
    return out


def check(cfg: MergeConfig) -> list[_Input]:
    """Every one-line refusal, before any work: settings, inputs, profiles."""
    settings = cfg.settings()  # method, input count, density, weights, slerp arity
    del settings
    from hackforge_edge.recipes.train_and_export import VARIANTS

    bad = [v for v in cfg.variants if v not in VARIANTS]
    if bad:
        raise UsageError(f"unknown variant(s) {', '.join(bad)} (valid: {', '.join(VARIANTS)})")
    if cfg.bn_images_per_task < 1:
        raise UsageError(f"--bn-images must be >= 1, got {cfg.bn_images_per_task}")
    if cfg.base is not None and not Path(cfg.base).is_file():
        raise UsageError(f"--base {cfg.base}: no such file")
    inputs = _open_inputs(cfg)
    if not cfg.skip_profile:
        from hackforge_edge.profiling import load_profile
        from hackforge_edge.recipes.profile import check_profiles

        for name in check_profiles(list(cfg.profiles)):
            load_profile(name)
    return inputs


def _tasks(inputs: list[_Input]):
    from hackforge_edge.data.loader import load_dataset
    from hackforge_edge.merging.evaluate import Task
    from hackforge_edge.merging.multitask import unique_task_names

    names = unique_task_names([i.name for i in inputs])
    tasks = []
    for name, i in zip(names, inputs):
        c = i.config
        splits = load_dataset(c.get("data"), image_size=int(c["image_size"]), seed=int(c.get("seed", 0)),
                              data_fraction=float(c.get("data_fraction", 1.0)),
                              group_pattern=c.get("group_pattern"))
        if list(splits.class_names) != i.labels:
            raise BundleError(f"{i.bundle.dir}: its data now has classes {splits.class_names}, "
                              f"the bundle {i.labels}")
        tasks.append(Task(name, i.labels, splits))
    return tasks


def run(cfg: MergeConfig, say: Callable[[str], None] = print) -> Path:
    """Merge ``cfg.inputs``; return the merged bundle directory (complete: manifest written)."""
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.merging.base import check_base, load_base
    from hackforge_edge.models.registry import MODELS
    from hackforge_edge.recipes.train_and_export import _requirements

    inputs = check(cfg)
    req = _requirements(cfg)
    grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
    model_name = inputs[0].model
    head = MODELS[model_name].head
    base_state, base_info = load_base(model_name, inputs[0].bundle.manifest.to_json(), cfg.base, device=cfg.device)
    base_info["sha256"] = check_base(base_state, head, inputs[0].base_sha256, base_info["origin"])
    tasks = _tasks(inputs)  # data read (and checked) before anything is written
    out = bundle.prepare_out_dir(Path(cfg.out) if cfg.out else
                                 Path("runs") / f"merge-{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}",
                                 overwrite=cfg.overwrite)
    say(f"bundle: {out}")
    return _execute(cfg, out, bundle.utc_now(), inputs, tasks, base_state, base_info, req, grid, say)


def _bn_batches(tasks, per_task: int, batch: int = 32):
    """Float32 NCHW batches of up to ``per_task`` training images of every task."""
    xs = [t.splits.train.to_nchw(t.splits.preprocess, limit=per_task) for t in tasks]
    return [x[s:s + batch] for x in xs for s in range(0, len(x), batch)]


def merge_models(model_name: str, base_state, finetuned, tasks, settings, *, update_bn: bool = True,
                 bn_images_per_task: int = 256, device: str = "cpu"):
    """The merged multi-head model and the base multi-head model (lambda = 0), plus details.

    ``finetuned``: each input's full fine-tuned state_dict (task order). Library entry point
    for scripts (benchmarks/merging.py) that have the weights in memory.
    """
    from hackforge_edge.merging.bn import reestimate_bn
    from hackforge_edge.merging.methods import merge
    from hackforge_edge.merging.multitask import build_multi_head
    from hackforge_edge.merging.task_vectors import task_vectors
    from hackforge_edge.models.registry import MODELS

    prefix = MODELS[model_name].head + "."
    tv = task_vectors(base_state, finetuned, skip_prefixes=(prefix,))
    result = merge(tv, settings)
    heads = [{k: v for k, v in sd.items() if k.startswith(prefix)} for sd in finetuned]
    names = [t.name for t in tasks]
    merged = build_multi_head(model_name, result.state, heads, names)
    base_backbone = {k: v for k, v in base_state.items() if not k.startswith(prefix)}
    base_model = build_multi_head(model_name, base_backbone, heads, names)
    details = {"merge": result.to_json(), "tensors_merged": len(tv.vectors),
               "elements_merged": tv.numel(), "integer_buffers_carried": sorted(tv.carried)}
    if update_bn:
        details["batchnorm"] = reestimate_bn(merged, _bn_batches(tasks, bn_images_per_task), device)
    else:
        details["batchnorm"] = {"updated": False, "reason": "--no-update-bn"}
    return merged, base_model, details


def _execute(cfg: MergeConfig, out: Path, started_at: str, inputs, tasks, base_state, base_info,
             req, grid, say) -> Path:
    from hackforge_edge.energy.accounting import PhaseLog, write_training_carbon
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.merging.artifacts import MergeEval
    from hackforge_edge.merging.evaluate import evaluate_models, table_markdown
    from hackforge_edge.merging.multitask import single_task_model
    from hackforge_edge.models.weights_file import WEIGHTS, load_weights
    from hackforge_edge.recipes.train_and_export import _local_tdp

    tdp_w, tdp_origin = _local_tdp(cfg)
    phases = PhaseLog(make_meter(cfg.device, tdp_w=tdp_w, tdp_origin=tdp_origin))
    model_name = inputs[0].model
    settings = cfg.settings()
    finetuned = [load_weights(i.bundle.path(WEIGHTS)) for i in inputs]
    with phases.phase("merge"):
        merged, base_model, details = merge_models(
            model_name, base_state, finetuned, tasks, settings, update_bn=cfg.update_bn,
            bn_images_per_task=cfg.bn_images_per_task, device=cfg.device)
    m = details["merge"]
    say(f"merge: {cfg.method} ({m['library_function']}, peft {m['peft_version']}) over "
        f"{details['tensors_merged']} tensors; BatchNorm re-estimated: {details['batchnorm'].get('updated')}")
    if cfg.method == "slerp":
        say(f"slerp: {m['slerp']['linear_fallbacks']} of {m['slerp']['tensors']} tensors nearly parallel "
            f"(|cos| > {m['slerp']['parallel_cos_threshold']}): linear interpolation there")

    with phases.phase("evaluation"):
        singles = [single_task_model(model_name, sd, len(t.labels)) for sd, t in zip(finetuned, tasks)]
        evaluation = evaluate_models(tasks, singles, {"merge": merged, "base": base_model}, device=cfg.device)
    MergeEval(**evaluation).write(out)
    say("accuracy on each task's test split:\n" + table_markdown(evaluation))
    merged_row = evaluation["rows"]["merge"]
    n_test = int(sum(len(t.splits.test) for t in tasks))
    Metrics(n=n_test, accuracy=merged_row["_mean_accuracy"],
            per_task={t.name: merged_row[t.name] for t in tasks}, split="test", n_images=n_test,
            method="merged PyTorch model, each task's head on that task's held-out test split; "
                   "accuracy = mean over tasks (every input and the base: merge_eval.json)").write(out)

    export = _export(cfg, out, merged, tasks, inputs, phases, say)

    profile_result = None
    if not cfg.skip_profile:
        from hackforge_edge.recipes.profile import run_profile

        with phases.phase("profiling"):
            profile_result = run_profile(out, cfg.profiles, req, meter=phases.meter, report=False)
    write_training_carbon(out, phases, grid, extra={"tdp_w": tdp_w, "tdp_origin": tdp_origin,
                                                    "note": "a merge trains nothing: merge, "
                                                            "BatchNorm update, evaluation, export"})
    if profile_result is not None:
        from hackforge_edge.report.build import build_report

        build_report(out, profile=profile_result.profile, feasibility=profile_result.feasibility)
        say(f"report: {out / 'report.html'}")

    n_params = int(sum(p.numel() for p in merged.parameters()))
    bundle.write_manifest(out, config={**cfg.to_json(), "model": model_name,
                                       "strategy": f"merge:{cfg.method}",
                                       "image_size": int(inputs[0].config["image_size"])},
                          seed=cfg.seed, started_at=started_at, extra={
        "exporter": export.exporter,
        "params": {"total_params": n_params, "trainable_params": 0, "deployed_params": n_params},
        "weights": {"kind": "merge", "base_sha256": inputs[0].base_sha256,
                    "base_sha256_scope": inputs[0].bundle.manifest.weights.base_sha256_scope,
                    "base": base_info},
        "merge": {**details, "inputs": [_input_record(i) for i in inputs],
                  "tasks": [t.name for t in tasks]},
    })
    say(f"done: {out / 'manifest.json'}")
    return out


def _export(cfg: MergeConfig, out: Path, merged, tasks, inputs, phases, say):
    """model.onnx (one output per task), its validation and variants, the merged weights,
    labels/preprocess (the first task's) and tasks.json. Returns the ExportResult."""
    import torch

    from hackforge_edge.merging.artifacts import TaskOutput, TasksFile
    from hackforge_edge.merging.multitask import export_multi_head, output_name
    from hackforge_edge.models.weights_file import WEIGHTS, save_weights
    from hackforge_edge.recipes.train_and_export import _make_variants
    from hackforge_edge.training.loop import split_to_nchw

    first = tasks[0].splits
    with phases.phase("export"):
        merged = merged.cpu().eval()
        export_x = torch.from_numpy(split_to_nchw(first.test, first.preprocess, limit=2))
        export, validation = export_multi_head(merged, export_x, out / bundle.MODEL,
                                               split_to_nchw(first.test, first.preprocess, limit=3),
                                               exporter=cfg.exporter)
    save_weights(merged.state_dict(), out / WEIGHTS, metadata={"format": "pt", "multi_head": "true"})
    bundle.atomic_write_json(out / bundle.LABELS, list(tasks[0].labels))
    bundle.atomic_write_json(out / bundle.PREPROCESS, first.preprocess.to_json())
    TasksFile(tasks=[TaskOutput(name=t.name, output=output_name(t.name), labels=list(t.labels),
                                bundle=i.name) for t, i in zip(tasks, inputs)]).write(out)
    with phases.phase("validation"):
        from hackforge_edge.tasks import get_task

        variants = _make_variants(cfg, get_task("image"), out, first, merged,
                                  split_to_nchw(first.test, first.preprocess, limit=3), say)
    ExportValidation(export=export.to_dict(), **validation, variants=variants).write(out)
    worst = max((o.get("max_abs_diff") or 0.0) for o in validation["outputs"].values())
    say(f"export: {len(tasks)} outputs, one backbone pass; validation vs PyTorch max abs diff "
        f"{worst:.2e} ({'passed' if validation.get('passed') else 'FAILED'})")
    return export


def _input_record(i: _Input) -> dict[str, Any]:
    arts = i.bundle.manifest.to_json()["artifacts"]
    return {"bundle": i.name, "path": str(i.bundle.dir.resolve()),
            "manifest_sha256": bundle.sha256_file(i.bundle.dir / bundle.MANIFEST),
            "model_onnx_sha256": (arts.get(bundle.MODEL) or {}).get("sha256"),
            "weights_sha256": (arts.get("weights.safetensors") or {}).get("sha256"),
            "strategy": i.config.get("strategy"), "labels": i.labels}
