"""``train-and-export`` as one function: data -> model -> strategy -> train (metered) -> fold
LoRA -> export ONNX -> validate -> variants -> profile -> feasibility -> report -> manifest.

Every phase runs inside an energy-meter window; the manifest is written last, so an
interrupted run (Ctrl-C, an error) leaves a directory without ``manifest.json`` that every
reader treats as incomplete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hackforge_edge import bundle
from hackforge_edge.errors import UsageError
from hackforge_edge.recipes.profile import DEFAULT_PROFILES
from hackforge_edge.training.defaults import (  # no-argument recipes (no numpy/torch)
    DEFAULTS,
    STRATEGY_DEFAULTS,
    TEXT_DEFAULTS,
)

log = logging.getLogger(__name__)
VARIANTS = ("fp16", "int8", "fused")  # fused: onnxruntime's transformer optimizer (text models)


@dataclass
class TrainExportConfig:
    """Everything ``train-and-export`` needs, resolved; recorded verbatim in the manifest."""

    # model, strategy, weights, epochs, lr, batch_size: None = the task's default recipe
    # (training.defaults: DEFAULTS for images, TEXT_DEFAULTS for text), filled in __post_init__
    model: str | None = None
    strategy: str | None = None
    data: str | None = None            # None = the toolkit's synthetic target domain
    image_size: int = DEFAULTS.image_size   # pixels (square)
    epochs: int | None = None
    data_fraction: float = 1.0
    seed: int = 0
    weights: str | None = None         # image: none | imagenet | source | PATH; text: pretrained | none
    device: str = "auto"
    lr: float | None = None
    batch_size: int | None = None
    lora_rank: int = DEFAULTS.lora_rank
    lora_alpha: float = DEFAULTS.lora_alpha
    group_pattern: str | None = None
    # transfer strategies (progressive, ewc, l2sp): see hackforge_edge.strategies
    unfreeze_every: int = STRATEGY_DEFAULTS.unfreeze_every
    lr_decay: float = STRATEGY_DEFAULTS.lr_decay
    slanted_triangular: bool = STRATEGY_DEFAULTS.slanted_triangular
    ewc_lambda: float = STRATEGY_DEFAULTS.ewc_lambda
    ewc_gamma: float = STRATEGY_DEFAULTS.ewc_gamma
    l2sp_alpha: float = STRATEGY_DEFAULTS.l2sp_alpha
    l2sp_beta: float = STRATEGY_DEFAULTS.l2sp_beta
    source_data: str | None = None     # source ImageFolder behind --weights PATH (EWC, retention)
    variants: tuple[str, ...] = ()
    profiles: tuple[str, ...] = DEFAULT_PROFILES
    skip_profile: bool = False
    region: str | None = None
    grid_intensity: float | None = None   # g CO2e / kWh
    pue: float | None = None
    requirements: dict[str, Any] = field(default_factory=dict)
    requirements_file: str | None = None
    tdp_w: float | None = None
    out: str | None = None
    overwrite: bool = False
    progress: bool = True
    task: str | None = None            # image | text; None = inferred from the model
    max_length: int = TEXT_DEFAULTS.max_length   # text: tokens (truncation, export, profiling)
    text_column: str = "text"          # text files: column names
    label_column: str = "label"
    group_column: str | None = None    # text files: patient id etc., kept in one split
    gate: str = "warn"  # negative-transfer gate: off | warn | stop (recipes/gate.py; image models)

    def __post_init__(self) -> None:
        from hackforge_edge.tasks import TASKS, infer_task, task_defaults

        if self.task is None:
            self.task = infer_task(self.model)
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)} (or tabular), got {self.task!r}")
        for name, value in task_defaults(self.task).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        problems = []
        if self.gate not in ("off", "warn", "stop"):
            problems.append(f"--gate must be off, warn or stop, got {self.gate!r}")
        if not 0.0 < self.data_fraction <= 1.0:
            problems.append(f"--data-fraction must be in (0, 1], got {self.data_fraction}")
        if self.epochs < 1:
            problems.append(f"--epochs must be >= 1, got {self.epochs}")
        if self.image_size < 16:
            problems.append(f"--image-size must be >= 16 pixels, got {self.image_size}")
        if self.batch_size < 2:
            problems.append(f"--batch-size must be >= 2, got {self.batch_size}")
        if self.lr <= 0:
            problems.append(f"--lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"--device must be auto, cpu or cuda, got {self.device!r}")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            problems.append(f"unknown variant(s) {', '.join(bad)} (valid: {', '.join(VARIANTS)})")
        if problems:
            raise UsageError("; ".join(problems))

    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        model = Path(self.model).name or "model"  # a model directory or hub id "org/name"
        return Path("runs") / f"{model}-{self.strategy}-{stamp}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = list(self.variants)
        d["profiles"] = list(self.profiles)
        d.pop("progress")
        return d


def _check_inputs(cfg: TrainExportConfig, task) -> None:
    """Fail on every bad name, path and setting before any work is done or anything written."""
    from hackforge_edge.strategies.registry import STRATEGIES, StrategyOptions

    if cfg.strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {cfg.strategy!r} (valid: {', '.join(STRATEGIES)})")
    bad = [v for v in cfg.variants if v not in task.variants]
    if bad:
        raise UsageError(f"variant(s) {', '.join(bad)} do not apply to {task.name} models "
                         f"(valid: {', '.join(task.variants)})")
    task.check_inputs(cfg)  # model name, data path, weights: the task's own rules
    StrategyOptions(lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha)  # validates its fields
    from hackforge_edge.recipes.strategy_steps import check_strategy_inputs

    check_strategy_inputs(cfg)  # progressive/ewc/l2sp ranges, ewc's need for source data
    if not cfg.skip_profile:
        from hackforge_edge.profiling import load_profile
        from hackforge_edge.profiling.preflight import check_profiles

        for name in check_profiles(list(cfg.profiles)):
            load_profile(name)  # a user YAML is validated here, naming the file and field


def _local_tdp(cfg: TrainExportConfig) -> tuple[float | None, str | None]:
    """TDP (W) and its origin for the CPU energy estimate, from the `local` hardware profile."""
    if cfg.tdp_w is not None:
        return float(cfg.tdp_w), "user value (--tdp-w)"
    from hackforge_edge.profiling import load_profile

    detected = getattr(load_profile("local"), "detected", None) or {}
    return detected.get("tdp_w"), (f"local hardware profile: {detected['tdp_source']}"
                                   if detected.get("tdp_source") else None)


def _requirements(cfg: TrainExportConfig):
    from hackforge_edge.feasibility.requirements import load_requirements

    return load_requirements(cfg.requirements_file, region=cfg.region,
                             grid_intensity_g_per_kwh=cfg.grid_intensity, pue=cfg.pue,
                             **cfg.requirements)


def run(cfg: TrainExportConfig, say: Callable[[str], None] = print) -> Path:
    """Run the whole pipeline; return the bundle directory (complete: manifest written).

    Bad names, paths and settings fail before anything is written. An interruption or an
    error later leaves the directory without ``manifest.json`` (incomplete by definition).
    """
    from hackforge_edge.energy.carbon import resolve_grid
    from hackforge_edge.tasks import get_task

    task = get_task(cfg.task)
    _check_inputs(cfg, task)
    req = _requirements(cfg)
    grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
    # the data is read (and checked: classes, unreadable images, bad rows) before anything is written
    splits = task.load_data(cfg)
    gate = None
    if task.name == "image":
        from hackforge_edge.recipes.gate import preflight  # negative-transfer gate: may refuse (exit 3)

        gate = preflight(model=cfg.model, weights="none" if cfg.strategy == "scratch" else cfg.weights,
                         splits=splits, image_size=cfg.image_size, seed=cfg.seed, mode=cfg.gate,
                         epochs=cfg.epochs, device=cfg.device, say=say)
    out = bundle.prepare_out_dir(cfg.resolved_out(), overwrite=cfg.overwrite)
    started_at = bundle.utc_now()
    say(f"bundle: {out}")
    return _execute(cfg, task, out, started_at, req, grid, splits, say, gate)


def _execute(cfg, task, out: Path, started_at: str, req, grid, splits, say, gate=None) -> Path:
    from hackforge_edge.recipes.strategy_steps import hook_summaries
    from hackforge_edge.training.artifacts import Metrics

    t = train_one(cfg, splits, run_name=out.name, say=say, task=task,
                  extra_hooks=list(gate.hooks) if gate else [])
    metrics_doc = Metrics.from_evaluation(
        t.metrics, split="test", method="PyTorch model on the held-out target-domain test split",
        source_retention=t.source_retention)
    metrics_doc.write(out)
    gate_entry = gate.finish(out, t.phases, say) if gate else None  # gate.json + monitor record
    say(f"target test accuracy {metrics_doc.accuracy:.3f}, ROC-AUC {metrics_doc.roc_auc}")

    folded, export = _export_step(task, out, splits, t.model, t.phases, say)
    _validate_step(cfg, task, out, splits, folded, export, t.phases, say)
    profile_result = None
    if not cfg.skip_profile:
        profile_result = _profile_step(cfg, task, out, splits, req, t.meter, t.phases, say)
    _carbon_step(out, t, grid, say)

    if profile_result is not None:
        from hackforge_edge.report.build import build_report

        build_report(out, profile=profile_result.profile, feasibility=profile_result.feasibility)
        say(f"report: {out / 'report.html'}")

    bundle.write_manifest(out, config=cfg.to_json(), seed=cfg.seed, started_at=started_at, extra={
        "exporter": export.exporter,
        "exporter_fallback_reason": export.fallback_reason,
        "params": t.params.to_json() if hasattr(t.params, "to_json") else asdict(t.params),
        "weights": t.weights_info,
        "source_model": t.source_info,
        "training": t.result.to_json(),
        "strategy_details": hook_summaries(t.hooks),
        "gate": gate_entry,
        "lr": cfg.lr,
        "data": splits.description,
    })
    say(f"done: {out / 'manifest.json'}")
    return out


def _export_step(task, out: Path, splits, model, phases, say):
    """Fold LoRA, export model.onnx, save the weights and the task's sidecars: (folded, export)."""
    from hackforge_edge import export as exporters

    with phases.phase("export"):
        folded = exporters.fold_lora(model).cpu().eval()
        example = task.export_example(splits)
        export = exporters.export_onnx(folded, example.inputs, out / "model.onnx",
                                       input_names=example.input_names, output_names=["logits"],
                                       dynamic_axes=example.dynamic_axes)
    _save_weights(folded, out, model)  # merging: fine-tuned PyTorch weights (+ LoRA adapter/)
    task.write_sidecars(out, splits)  # labels.json, preprocess.json (+ tokenizer.json for text)
    say(f"export: {export.exporter} exporter, {export.node_count} nodes, "
        f"{export.file_size_bytes / 1e6:.2f} MB")
    return folded, export


def _validate_step(cfg, task, out: Path, splits, folded, export, phases, say) -> None:
    """model.onnx vs PyTorch at other shapes, plus the FP16/INT8 variants: export_validation.json."""
    from hackforge_edge import export as exporters
    from hackforge_edge.export.artifact import ExportValidation

    with phases.phase("validation"):
        # shapes other than the export's (batch, and sequence length for text)
        val_x = task.validation_inputs(splits)
        validation = exporters.validate_export(folded, out / "model.onnx", val_x,
                                               output_names=["logits"],
                                               export_input_shapes=export.export_input_shapes)
        variants = _make_variants(cfg, task, out, splits, folded, val_x, say)
    checked = ExportValidation(export=export.to_dict(), **validation, variants=variants)
    checked.write(out)
    say(f"validation vs PyTorch: max abs diff {_g(checked.worst_abs_diff)} "
        f"({'within' if checked.passed else 'OUTSIDE'} atol {checked.atol})")


def _profile_step(cfg, task, out: Path, splits, req, meter, phases, say):
    """Profile the bundle in progress against ``cfg.profiles``; returns run_profile's result."""
    from hackforge_edge.recipes.profile import run_profile

    with phases.phase("profiling"):
        # this run's own bundle, not finished yet: nothing to verify, no manifest to refresh
        in_progress = bundle.ModelRef(out / bundle.MODEL, bundle.Bundle.in_progress(out))
        profile_result = run_profile(in_progress, cfg.profiles, req, meter=meter, report=False,
                                     **task.profile_kwargs(cfg, splits))
    counts = profile_result.feasibility.counts
    say("verdicts: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("PASS", "MARGINAL", "FAIL")))
    return profile_result


def _carbon_step(out: Path, t, grid, say) -> None:
    """training_carbon.json from the metered phases of the trained run ``t``."""
    from hackforge_edge.energy.accounting import write_training_carbon

    source_info, meter = t.source_info, t.meter
    one_off = (source_info or {}).get("pretrain_energy") if (source_info or {}).get("cache_hit") else None
    carbon = write_training_carbon(out, t.phases, grid, extra={
        "tdp_w": t.tdp_w, "tdp_origin": t.tdp_origin, "meter_skipped": getattr(meter, "skipped", None),
        # the cached source model's pretraining, metered in the run that made it; not in totals
        "source_pretrain_one_off": one_off})
    say(f"training energy: {_g(carbon.totals.energy_kwh)} kWh ({carbon.kind}: "
        f"{', '.join(carbon.methods)}), {_g(carbon.totals.co2_kg)} kg CO2e at "
        f"{grid.intensity_g_per_kwh:g} g/kWh ({grid.region}, PUE {grid.pue:g})")


def _weights_identity(model, weights: str) -> dict[str, Any]:
    """The starting weights' provenance, with the sha256 of the starting backbone for every
    start that is not a random init (fine-tunes of one base share it: ``hf-edge merge`` checks
    it; see models.weights_hash)."""
    info = dict((getattr(model, "hf_edge_meta", {}) or {}).get("weights") or {"kind": weights})
    if info.get("kind", weights) != "none":
        from hackforge_edge.models.weights_hash import model_backbone_sha256

        info["base_sha256"], info["base_sha256_scope"] = model_backbone_sha256(model)
    return info


def _save_weights(folded, out: Path, model=None) -> None:
    """weights.safetensors (the folded model's state_dict); a LoRA run also keeps adapter/."""
    from hackforge_edge.merging.lora import save_adapter
    from hackforge_edge.models.weights_file import WEIGHTS, save_weights

    save_weights(folded.state_dict(), out / WEIGHTS, metadata={"format": "pt", "folded": "true"})
    save_adapter(model, out)


# ---- one training run (also a sweep cell): build, adapt, train metered, evaluate; writes nothing

@dataclass
class TrainedModel:
    """What :func:`train_one` returns: the trained model and everything measured on the way."""

    model: Any
    params: Any              # strategies.registry.ParamReport
    result: Any              # training.loop.TrainResult
    metrics: dict[str, Any]  # training.loop.evaluate on the test split
    meter: Any
    phases: Any              # energy.accounting.PhaseLog: source_pretrain (if any), target_transfer
    source_info: dict[str, Any] | None
    weights: str             # the weights really used ("none" under scratch)
    tdp_w: float | None
    tdp_origin: str | None
    weights_info: dict[str, Any]             # provenance + base_sha256 of the starting weights
    hooks: list                              # strategy hooks (progressive, EWC, L2-SP)
    source_retention: dict[str, Any] | None  # forgetting on the source test split


def train_one(cfg: TrainExportConfig, splits, *, run_name: str, say: Callable[[str], None] = print,
              task=None, extra_hooks: list | None = None) -> TrainedModel:
    """Build ``cfg.model``, apply ``cfg.strategy``, train and evaluate it on ``splits`` inside
    metered phases. ``run_name`` is recorded with a freshly pretrained source model. ``task``
    (image or text adapter) defaults to ``cfg.task``'s."""
    from hackforge_edge.energy.accounting import PhaseLog
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.strategies.registry import apply_strategy
    from hackforge_edge.tasks import get_task
    from hackforge_edge.training.loop import evaluate, train

    tdp_w, tdp_origin = _local_tdp(cfg)
    meter = make_meter("auto" if cfg.device == "auto" else cfg.device, tdp_w=tdp_w, tdp_origin=tdp_origin)
    phases = PhaseLog(meter)

    task = task or get_task(cfg.task)
    say(f"data: {len(splits.train.labels)} train / {len(splits.val.labels)} val / "
        f"{len(splits.test.labels)} test {task.noun}, classes {splits.class_names}")

    # scratch means random init whatever --weights says; record what was really used
    weights = "none" if cfg.strategy == "scratch" else cfg.weights
    def build():
        return task.build_model(cfg, splits, weights)

    source_info = None
    if weights == "source":
        # building the model loads the cached source model, or pretrains it on a cache miss
        meter.begin("source_pretrain")
        try:
            model = build()
        finally:
            m = meter.end("source_pretrain")
        source_info = model.hf_edge_meta["weights"]
        if source_info.get("cache_hit"):
            phases.cache_hit("source_pretrain", note=f"loaded {source_info.get('cache_path')} "
                                                     f"in {m.duration_s:.2f} s")
            say(f"source model: cache hit ({source_info.get('cache_path')})")
        else:
            phases.add(m)
            from hackforge_edge.models.source import record_pretrain_energy

            record_pretrain_energy(source_info, {
                "energy_j": m.energy_j_total, "kind": m.kind, "method": m.method,
                "band": list(m.band) if m.band else None, "duration_s": m.duration_s,
                "bundle": run_name, "measured_at": bundle.utc_now()})
            say(f"source model: pretrained on the synthetic source domain in {m.duration_s:.1f} s, "
                f"source test accuracy {source_info.get('source_test_accuracy')}")
    else:
        model = build()
    weights_info = _weights_identity(model, weights)

    from hackforge_edge.recipes import strategy_steps

    model, params = apply_strategy(model, cfg.strategy, options=strategy_steps.strategy_options(cfg))
    say(f"strategy {cfg.strategy}: {params.trainable_params:,} of {params.total_params:,} parameters trainable")
    source_task = strategy_steps.load_source(cfg)
    hooks = strategy_steps.make_hooks(cfg, model, source_task, phases, say)

    lr = cfg.lr
    with phases.phase("target_transfer"):
        result = train(model, splits, epochs=cfg.epochs, lr=lr, batch_size=cfg.batch_size,
                       seed=cfg.seed, device=cfg.device, progress=cfg.progress,
                       hooks=hooks + list(extra_hooks or []), augment=task.augment)
        metrics = evaluate(model, splits.test, preprocess=splits.preprocess,
                           class_names=splits.class_names, device=cfg.device)
    retention = strategy_steps.retention(cfg, model, source_task, splits.class_names, phases, say)
    return TrainedModel(model, params, result, metrics, meter, phases, source_info, weights,
                        tdp_w, tdp_origin, weights_info, hooks, retention)


def _g(x: Any) -> str:
    """Three significant figures, or n/a for a missing value."""
    return "n/a" if x is None else f"{x:.3g}"


def _make_variants(cfg, task, out: Path, splits, folded, val_x, say) -> dict[str, Any]:
    """FP16/INT8 (and fused) variants, each judged on held-out target data against the FP32
    model; a fused graph is also validated against PyTorch like the export itself."""
    if not cfg.variants:
        return {}
    from hackforge_edge import export as exporters
    test_x, test_y = task.labelled_inputs(splits.test, splits.preprocess)
    results: dict[str, Any] = {}
    for name in cfg.variants:
        path = out / f"model.{name}.onnx"
        if name == "fp16":
            made = exporters.make_fp16(out / "model.onnx", path)
        elif name == "int8":
            made = task.make_int8(out / "model.onnx", path, splits)
        else:
            made = task.make_fused(out / "model.onnx", path, folded)
            if not made["applied"]:
                results[name] = {"build": made, "validation": None}
                say(f"variant {name}: skipped ({made.get('reason')})")
                continue
            made["vs_pytorch"] = exporters.validate_export(folded, path, val_x, output_names=["logits"])
        judged = exporters.validate_variant(out / "model.onnx", path, test_x, test_y)
        results[name] = {"build": made, "validation": judged}
        acc = judged.get("accuracy", {})
        say(f"variant {name}: accuracy {acc.get('variant')} vs fp32 {acc.get('fp32')}, "
            f"{judged.get('status')}")
    return results
