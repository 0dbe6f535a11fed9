"""The image task: torchvision CNNs on image folders or the synthetic histopathology domains.

Interface every task adapter implements (the train-and-export recipe calls only these):

``name``, ``noun`` (what one item is called in messages and metrics: "images", "texts"),
``variants`` (the extra exports it supports), ``augment`` (whether the training loop augments),
``check_inputs(cfg)``, ``load_data(cfg)``,
``build_model(cfg, splits, weights)``, ``export_example(splits)``, ``validation_inputs(splits)``,
``labelled_inputs(split, preprocess)``, ``make_int8(src, dst, splits)``,
``write_sidecars(out, splits)``, ``profile_kwargs(cfg, splits)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hackforge_edge import bundle
from hackforge_edge.errors import DataError, UsageError


@dataclass(frozen=True)
class ExportExample:
    """Example inputs for ``export_onnx``: a tensor (or name->tensor dict), input names (None:
    the dict's keys), dynamic axes (None: batch only)."""

    inputs: Any
    input_names: list[str] | None
    dynamic_axes: dict | None


class ImageTask:
    name = "image"
    noun = "images"
    variants = ("fp16", "int8")
    augment = True  # flips and 90-degree rotations (tissue has no orientation)

    def check_inputs(self, cfg) -> None:
        from hackforge_edge.models.registry import MODELS, WEIGHT_CHOICES

        if cfg.model not in MODELS:
            raise UsageError(f"unknown model {cfg.model!r} (valid: {', '.join(sorted(MODELS))}; "
                             "text models: minilm-l6, distilbert, bert-base, or a hub id with --task text)")
        if cfg.data and cfg.data not in ("synthetic", "synthetic-target", "synthetic-source") \
                and not Path(cfg.data).exists():
            raise DataError(f"--data {cfg.data}: no such directory")
        if cfg.weights not in WEIGHT_CHOICES and not Path(cfg.weights).is_file():
            raise UsageError(f"--weights must be one of {', '.join(WEIGHT_CHOICES)} or an existing "
                             f".pt/.pth file; {cfg.weights!r} is neither")

    def load_data(self, cfg):
        from hackforge_edge.data.loader import load_dataset

        return load_dataset(cfg.data, image_size=cfg.image_size, seed=cfg.seed,
                            data_fraction=cfg.data_fraction, group_pattern=cfg.group_pattern)

    def build_model(self, cfg, splits, weights: str):
        from hackforge_edge.models.registry import create_model

        return create_model(cfg.model, len(splits.class_names), weights, image_size=cfg.image_size,
                            seed=cfg.seed, source_seed=cfg.seed, progress=cfg.progress, device=cfg.device)

    def export_example(self, splits) -> ExportExample:
        import torch

        x = torch.from_numpy(splits.test.to_nchw(splits.preprocess, limit=2))
        return ExportExample(x, ["input"], None)

    def validation_inputs(self, splits):
        # a batch size other than the export one (2): the dynamic axis is exercised
        return splits.test.to_nchw(splits.preprocess, limit=3)

    def labelled_inputs(self, split, preprocess):
        return split.to_nchw(preprocess), split.labels

    def make_int8(self, src: Path, dst: Path, splits) -> dict:
        from hackforge_edge import export as exporters

        calib = splits.val.to_nchw(splits.preprocess, limit=64)
        return exporters.make_int8(src, dst, [calib[i:i + 8] for i in range(0, len(calib), 8)])

    def write_sidecars(self, out: Path, splits) -> None:
        bundle.atomic_write_json(out / "labels.json", list(splits.class_names))
        bundle.atomic_write_json(out / "preprocess.json", splits.preprocess.to_json())

    def profile_kwargs(self, cfg, splits) -> dict:
        return {}
