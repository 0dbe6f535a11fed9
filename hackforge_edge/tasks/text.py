"""The text task: transformers sequence classifiers on clinical notes or CSV/JSONL files.

Same interface as :mod:`hackforge_edge.tasks.image`. Export uses dynamic batch *and* sequence
axes; validation runs at another batch size and sequence length; INT8 is onnxruntime's dynamic
quantisation (the transformer recipe); the extra ``fused`` variant is onnxruntime's transformer
optimizer (fusions where its patterns apply). The bundle carries ``tokenizer.json``.
"""

from __future__ import annotations

from pathlib import Path

from hackforge_edge import bundle
from hackforge_edge.errors import UsageError
from hackforge_edge.tasks.image import ExportExample

EXPORT_BATCH, EXPORT_SEQ = 2, 16  # the export's example shape; validation uses others


class TextTask:
    name = "text"
    noun = "texts"
    variants = ("fp16", "int8", "fused")
    augment = False  # no label-preserving text augmentation is applied

    def __init__(self) -> None:
        self._src = None

    def _source(self, cfg):
        from hackforge_edge.models.text import resolve_source

        if self._src is None:
            self._src = resolve_source(cfg.model, cfg.weights)
        return self._src

    def check_inputs(self, cfg) -> None:
        from hackforge_edge.data.text_files import is_text_file
        from hackforge_edge.data.text_loader import SYNTHETIC_TEXT_ALIASES

        if cfg.group_pattern is not None:
            raise UsageError("--group-pattern applies to image folders; for text use --group-column")
        if cfg.max_length < 8:
            raise UsageError(f"--max-length must be >= 8 tokens, got {cfg.max_length}")
        if cfg.data not in SYNTHETIC_TEXT_ALIASES and not is_text_file(cfg.data):
            from hackforge_edge.errors import DataError
            raise DataError(f"--data {cfg.data}: text data is a .csv or .jsonl file, or "
                            f"{', '.join(a for a in SYNTHETIC_TEXT_ALIASES if a)}")
        self._source(cfg)  # a missing package, directory or tokenizer fails here, before any work

    def load_data(self, cfg):
        from hackforge_edge.data.text_loader import load_text_dataset
        from hackforge_edge.models.text import load_tokenizer

        src = self._source(cfg)
        return load_text_dataset(
            cfg.data, make_preprocess=lambda texts: load_tokenizer(src, texts, cfg.max_length),
            seed=cfg.seed, data_fraction=cfg.data_fraction, text_column=cfg.text_column,
            label_column=cfg.label_column, group_column=cfg.group_column)

    def build_model(self, cfg, splits, weights: str):
        from hackforge_edge.models.text import create_text_model, resolve_source

        # scratch passes weights="none": same source, random init from its config
        src = self._source(cfg)
        if weights != cfg.weights:
            src = resolve_source(cfg.model, weights)
        model = create_text_model(cfg.model, len(splits.class_names), weights, seed=cfg.seed, src=src)
        vocab = model.encoder.config.vocab_size
        if splits.preprocess.tokenizer.get_vocab_size() > vocab:
            from hackforge_edge.errors import ModelError
            raise ModelError(f"{cfg.model}: tokenizer has {splits.preprocess.tokenizer.get_vocab_size()} "
                             f"tokens but the model's vocabulary is {vocab}")
        return model

    def export_example(self, splits) -> ExportExample:
        import torch

        from hackforge_edge.export.onnx_export import text_classifier_axes

        seq = min(EXPORT_SEQ, splits.preprocess.max_length)
        feed = splits.preprocess.encode(splits.test.texts[:EXPORT_BATCH], pad_to=seq)
        return ExportExample({k: torch.from_numpy(v) for k, v in feed.items()}, None,
                             text_classifier_axes(list(feed)))

    def validation_inputs(self, splits):
        # another batch size (3) and another sequence length (the longest of those texts, at
        # least EXPORT_SEQ + 1 tokens: short texts are padded): both dynamic axes exercised
        pre = splits.preprocess
        texts = splits.test.texts[:3]
        exported = min(EXPORT_SEQ, pre.max_length)
        seq = max(max(pre.token_counts(texts)), min(exported + 1, pre.max_length))
        if seq == exported:  # max_length <= EXPORT_SEQ: go shorter instead
            seq = exported - 1
        return pre.encode(texts, pad_to=seq)

    def labelled_inputs(self, split, preprocess):
        return preprocess.encode(split.texts), split.labels

    def make_int8(self, src: Path, dst: Path, splits) -> dict:
        from hackforge_edge import export as exporters

        return exporters.make_int8(src, dst, mode="dynamic")

    def write_sidecars(self, out: Path, splits) -> None:
        bundle.atomic_write_json(out / "labels.json", list(splits.class_names))
        bundle.atomic_write_json(out / "preprocess.json", splits.preprocess.to_json())
        splits.preprocess.save(out)

    def profile_kwargs(self, cfg, splits) -> dict:
        return {"seq_len": int(splits.preprocess.max_length)}

    def make_fused(self, src: Path, dst: Path, model) -> dict:
        """onnxruntime's transformer optimizer on the export; see export/fusion.py."""
        from hackforge_edge.export.fusion import fuse_transformer

        cfg = model.encoder.config
        return fuse_transformer(src, dst, model_type=cfg.model_type,
                                num_heads=getattr(cfg, "num_attention_heads", getattr(cfg, "n_heads", 0)),
                                hidden_size=getattr(cfg, "hidden_size", getattr(cfg, "dim", 0)))
