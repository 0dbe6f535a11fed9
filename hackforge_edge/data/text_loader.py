"""``load_text_dataset``: the synthetic clinical notes or a CSV/JSONL file, split like images.

Splits reuse :mod:`hackforge_edge.data.splits` (seeded, stratified, group-aware) and the same
``--data-fraction`` rule (a stratified share of the training split only). The tokenizer is made
by the caller from the training texts (``make_preprocess``): a pretrained model brings its own,
a config-built one gets a WordPiece tokenizer trained on those texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hackforge_edge.data import text_synthetic
from hackforge_edge.data.splits import DatasetSplits, check_fraction, split_indices, stratified_fraction
from hackforge_edge.data.text_files import read_text_table
from hackforge_edge.data.text_preprocess import TextPreprocess

SYNTHETIC_TEXT_SIZES = {"train": 240, "val": 80, "test": 200}
SYNTHETIC_TEXT_ALIASES = {None: "target", "synthetic": "target", "synthetic-text": "target",
                          "synthetic-target": "target", "synthetic-source": "source"}


@dataclass
class TextSplit:
    """One split of texts: ``texts`` N strings, ``labels`` int64 N, ``names`` N ids."""

    texts: list[str]
    labels: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, idx: Sequence[int] | np.ndarray) -> "TextSplit":
        idx = np.asarray(idx, dtype=np.int64)
        return TextSplit([self.texts[i] for i in idx], self.labels[idx],
                         [self.names[i] for i in idx] if self.names else [])

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()


def load_text_dataset(data: str | None, *, make_preprocess: Callable[[list[str]], TextPreprocess],
                      seed: int, data_fraction: float = 1.0, text_column: str = "text",
                      label_column: str = "label", group_column: str | None = None,
                      val_fraction: float = 0.15, test_fraction: float = 0.15,
                      synthetic_sizes: dict[str, int] | None = None) -> DatasetSplits:
    """Load and split text data. ``data``: None / "synthetic" / "synthetic-text" /
    "synthetic-target" (GP letters), "synthetic-source" (ED notes), or a .csv/.jsonl file.
    ``make_preprocess(train_texts)`` returns the tokenizer wrapper."""
    fraction = check_fraction(data_fraction)
    if data in SYNTHETIC_TEXT_ALIASES:
        domain = SYNTHETIC_TEXT_ALIASES[data]
        sizes = {**SYNTHETIC_TEXT_SIZES, **(synthetic_sizes or {})}
        splits = {}
        for stream, name in enumerate(("train", "val", "test")):
            texts, labels = text_synthetic.generate(sizes[name], domain=domain, seed=seed, stream=stream)
            splits[name] = TextSplit(texts, labels, [f"{domain}-{name}-{i:05d}" for i in range(len(labels))])
        class_names = list(text_synthetic.CLASS_NAMES)
        source = {"kind": "synthetic-text", "domain": text_synthetic.domain_description(domain)}
    else:
        table = read_text_table(data, text_column=text_column, label_column=label_column,
                                group_column=group_column)
        class_names = sorted(set(table.labels))
        labels = np.asarray([class_names.index(x) for x in table.labels], dtype=np.int64)
        names = [f"row-{i:06d}" for i in range(len(labels))]
        groups = table.groups if table.groups is not None else names
        idx = split_indices(labels, groups, seed=seed, val_fraction=val_fraction,
                            test_fraction=test_fraction, class_names=class_names)
        splits = {n: TextSplit([table.texts[i] for i in ix], labels[ix], [names[i] for i in ix])
                  for n, ix in idx.items()}
        source = {"kind": "text-file", "path": table.path, "text_column": text_column,
                  "label_column": label_column, "group_column": group_column,
                  "n_groups": len(set(groups)), "val_fraction": val_fraction, "test_fraction": test_fraction}

    full_train = len(splits["train"])
    splits["train"] = splits["train"].subset(stratified_fraction(splits["train"].labels, fraction, seed))
    preprocess = make_preprocess(list(splits["train"].texts))
    nc = len(class_names)
    lengths = preprocess.lengths(splits["test"].texts)
    tokens = [n for n, _ in lengths]
    description = {
        **source, "data": data or "synthetic", "seed": seed, "class_names": class_names,
        "data_fraction": fraction, "train_texts_before_fraction": full_train,
        "max_length": int(preprocess.max_length),
        "test_tokens": {"mean": float(np.mean(tokens)), "max": int(max(tokens)),
                        "truncated": int(sum(cut for _, cut in lengths))},
        "counts": {n: {"total": len(s), "per_class": dict(zip(class_names, s.class_counts(nc)))}
                   for n, s in splits.items()},
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], class_names, preprocess, description)
