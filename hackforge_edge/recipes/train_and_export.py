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
from hackforge_edge.training.defaults import DEFAULTS  # the no-argument run's recipe (no numpy/torch)

log = logging.getLogger(__name__)
VARIANTS = ("fp16", "int8")


@dataclass
class TrainExportConfig:
    """Everything ``train-and-export`` needs, resolved; recorded verbatim in the manifest."""

    model: str = DEFAULTS.model
    strategy: str = DEFAULTS.strategy
    data: str | None = None            # None = the toolkit's synthetic target domain
    image_size: int = DEFAULTS.image_size   # pixels (square)
    epochs: int = DEFAULTS.epochs
    data_fraction: float = 1.0
    seed: int = 0
    weights: str = DEFAULTS.weights    # none | imagenet | source | PATH
    device: str = "auto"
    lr: float = DEFAULTS.lr
    batch_size: int = DEFAULTS.batch_size
    lora_rank: int = DEFAULTS.lora_rank
    lora_alpha: float = DEFAULTS.lora_alpha
    group_pattern: str | None = None
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
    gate: str = "warn"  # negative-transfer gate: off | warn | stop (recipes/gate.py)

    def __post_init__(self) -> None:
        problems = []
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
        if self.gate not in ("off", "warn", "stop"):
            problems.append(f"--gate must be off, warn or stop, got {self.gate!r}")
        if problems:
            raise UsageError("; ".join(problems))

    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{self.model}-{self.strategy}-{stamp}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["variants"] = list(self.variants)
        d["profiles"] = list(self.profiles)
        d.pop("progress")
        return d


def _check_inputs(cfg: TrainExportConfig) -> None:
    """Fail on every bad name, path and setting before any work is done or anything written."""
    from hackforge_edge.errors import DataError
    from hackforge_edge.models.registry import MODELS, WEIGHT_CHOICES
    from hackforge_edge.strategies.registry import STRATEGIES, StrategyOptions

    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r} (valid: {', '.join(sorted(MODELS))})")
    if cfg.strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {cfg.strategy!r} (valid: {', '.join(STRATEGIES)})")
    if cfg.data and cfg.data not in ("synthetic", "synthetic-target", "synthetic-source") \
            and not Path(cfg.data).exists():
        raise DataError(f"--data {cfg.data}: no such directory")
    if cfg.weights not in WEIGHT_CHOICES and not Path(cfg.weights).is_file():
        raise UsageError(f"--weights must be one of {', '.join(WEIGHT_CHOICES)} or an existing "
                         f".pt/.pth file; {cfg.weights!r} is neither")
    StrategyOptions(lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha)  # validates its fields
    if not cfg.skip_profile:
        from hackforge_edge.recipes.profile import check_profiles
        from hackforge_edge.profiling import load_profile

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

    _check_inputs(cfg)
    req = _requirements(cfg)
    grid = resolve_grid(req.region, req.grid_intensity_g_per_kwh, req.pue)
    # the data is read (and checked: classes, unreadable images) before anything is written
    from hackforge_edge.data.loader import load_dataset

    splits = load_dataset(cfg.data, image_size=cfg.image_size, seed=cfg.seed,
                          data_fraction=cfg.data_fraction, group_pattern=cfg.group_pattern)
    from hackforge_edge.recipes.gate import preflight  # negative-transfer gate: may refuse (exit 3)

    gate = preflight(model=cfg.model, weights="none" if cfg.strategy == "scratch" else cfg.weights,
                     splits=splits, image_size=cfg.image_size, seed=cfg.seed, mode=cfg.gate,
                     epochs=cfg.epochs, device=cfg.device, say=say)
    out = bundle.prepare_out_dir(cfg.resolved_out(), overwrite=cfg.overwrite)
    started_at = bundle.utc_now()
    say(f"bundle: {out}")
    return _execute(cfg, out, started_at, req, grid, splits, say, gate)


def _execute(cfg, out: Path, started_at: str, req, grid, splits, say, gate=None) -> Path:
    import torch

    from hackforge_edge import export as exporters
    from hackforge_edge.energy.accounting import PhaseLog, write_training_carbon
    from hackforge_edge.energy.meter import make_meter
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.strategies.registry import apply_strategy
    from hackforge_edge.training.loop import evaluate, split_to_nchw, train

    tdp_w, tdp_origin = _local_tdp(cfg)
    meter = make_meter("auto" if cfg.device == "auto" else cfg.device, tdp_w=tdp_w, tdp_origin=tdp_origin)
    phases = PhaseLog(meter)

    num_classes = len(splits.class_names)
    say(f"data: {len(splits.train.labels)} train / {len(splits.val.labels)} val / "
        f"{len(splits.test.labels)} test images, classes {splits.class_names}")

    # scratch means random init whatever --weights says; record what was really used
    weights = "none" if cfg.strategy == "scratch" else cfg.weights
    def build():
        return create_model(cfg.model, num_classes, weights, image_size=cfg.image_size, seed=cfg.seed,
                            source_seed=cfg.seed, progress=cfg.progress, device=cfg.device)

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
                "bundle": out.name, "measured_at": bundle.utc_now()})
            say(f"source model: pretrained on the synthetic source domain in {m.duration_s:.1f} s, "
                f"source test accuracy {source_info.get('source_test_accuracy')}")
    else:
        model = build()

    model, params = apply_strategy(model, cfg.strategy, lora_rank=cfg.lora_rank,
                                   lora_alpha=cfg.lora_alpha, seed=cfg.seed)
    say(f"strategy {cfg.strategy}: {params.trainable_params:,} of {params.total_params:,} parameters trainable")

    lr = cfg.lr
    with phases.phase("target_transfer"):
        result = train(model, splits, epochs=cfg.epochs, lr=lr, batch_size=cfg.batch_size,
                       seed=cfg.seed, device=cfg.device, progress=cfg.progress,
                       hooks=gate.hooks if gate else ())
        metrics = evaluate(model, splits.test, preprocess=splits.preprocess,
                           class_names=splits.class_names, device=cfg.device)
    metrics_doc = {
        **metrics,
        "split": "test", "n_images": int(len(splits.test.labels)),
        "kind": "measured", "method": "PyTorch model on the held-out target-domain test split",
    }
    bundle.atomic_write_json(out / "metrics.json", metrics_doc)
    gate_entry = gate.finish(out, phases, say) if gate else None  # gate.json + monitor record
    say(f"target test accuracy {metrics.get('accuracy'):.3f}, ROC-AUC {metrics.get('roc_auc')}")

    with phases.phase("export"):
        folded = exporters.fold_lora(model).cpu().eval()
        export_x = torch.from_numpy(split_to_nchw(splits.test, splits.preprocess, limit=2))
        export = exporters.export_onnx(folded, export_x, out / "model.onnx", input_names=["input"],
                                       output_names=["logits"])
    bundle.atomic_write_json(out / "labels.json", list(splits.class_names))
    bundle.atomic_write_json(out / "preprocess.json", splits.preprocess.to_json())
    say(f"export: {export.exporter} exporter, {export.node_count} nodes, "
        f"{export.file_size_bytes / 1e6:.2f} MB")

    with phases.phase("validation"):
        # a batch size other than the export one (2): the dynamic axis is exercised
        val_x = split_to_nchw(splits.test, splits.preprocess, limit=3)
        validation = exporters.validate_export(folded, out / "model.onnx", val_x,
                                               output_names=["logits"],
                                               export_input_shapes=export.export_input_shapes)
        variants = _make_variants(cfg, out, splits, split_to_nchw, say)
    bundle.atomic_write_json(out / "export_validation.json",
                             {"export": export.to_dict(), **validation, "variants": variants})
    worst = max((o.get("max_abs_diff") or 0.0) for o in validation["outputs"].values())
    say(f"validation vs PyTorch: max abs diff {worst:.2e} "
        f"({'within' if validation.get('passed') else 'OUTSIDE'} atol {validation.get('atol')})")

    profile_result = None
    if not cfg.skip_profile:
        from hackforge_edge.recipes.profile import run_profile

        with phases.phase("profiling"):
            profile_result = run_profile(out, cfg.profiles, req, meter=meter, report=False)
        counts = profile_result.feasibility.get("counts", {})
        say("verdicts: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("PASS", "MARGINAL", "FAIL")))

    one_off = (source_info or {}).get("pretrain_energy") if (source_info or {}).get("cache_hit") else None
    carbon = write_training_carbon(out, phases, grid, extra={
        "tdp_w": tdp_w, "tdp_origin": tdp_origin, "meter_skipped": getattr(meter, "skipped", None),
        # the cached source model's pretraining, metered in the run that made it; not in totals
        "source_pretrain_one_off": one_off})
    totals = carbon.get("totals", {})
    say(f"training energy: {_g(totals.get('energy_kwh'))} kWh ({carbon.get('kind')}: "
        f"{', '.join(carbon.get('methods', []))}), {_g(totals.get('co2_kg'))} kg CO2e at "
        f"{grid.intensity_g_per_kwh:g} g/kWh ({grid.region}, PUE {grid.pue:g})")

    if profile_result is not None:
        from hackforge_edge.report.build import build_report

        build_report(out, profile=profile_result.profile, feasibility=profile_result.feasibility)
        say(f"report: {out / 'report.html'}")

    bundle.write_manifest(out, config=cfg.to_json(), seed=cfg.seed, started_at=started_at, extra={
        "exporter": export.exporter,
        "exporter_fallback_reason": export.fallback_reason,
        "params": params.to_json() if hasattr(params, "to_json") else asdict(params),
        "weights": (getattr(model, "hf_edge_meta", {}) or {}).get("weights", {"kind": weights}),
        "source_model": source_info,
        "training": result.to_json(),
        "lr": lr,
        "data": splits.description,
        "gate": gate_entry,
    })
    say(f"done: {out / 'manifest.json'}")
    return out


def _g(x: Any) -> str:
    """Three significant figures, or n/a for a missing value."""
    return "n/a" if x is None else f"{x:.3g}"


def _make_variants(cfg, out: Path, splits, split_to_nchw, say) -> dict[str, Any]:
    """FP16/INT8 variants, each judged on held-out target data against the FP32 model."""
    if not cfg.variants:
        return {}
    from hackforge_edge import export as exporters
    test_x = split_to_nchw(splits.test, splits.preprocess)
    test_y = splits.test.labels
    results: dict[str, Any] = {}
    for name in cfg.variants:
        path = out / f"model.{name}.onnx"
        if name == "fp16":
            made = exporters.make_fp16(out / "model.onnx", path)
        else:
            calib = split_to_nchw(splits.val, splits.preprocess, limit=64)
            made = exporters.make_int8(out / "model.onnx", path,
                                       [calib[i:i + 8] for i in range(0, len(calib), 8)])
        judged = exporters.validate_variant(out / "model.onnx", path, test_x, test_y)
        results[name] = {"build": made, "validation": judged}
        acc = judged.get("accuracy", {})
        say(f"variant {name}: accuracy {acc.get('variant')} vs fp32 {acc.get('fp32')}, "
            f"{judged.get('status')}")
    return results
