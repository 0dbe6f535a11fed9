"""``load_dataset``: one entry point for the synthetic domains and real image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hackforge_edge.data import imagefolder, synthetic
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.data.splits import (
    DatasetSplits,
    Split,
    check_fraction,
    group_keys,
    split_indices,
    stratified_fraction,
)
from hackforge_edge.errors import UsageError

# Default synthetic split sizes (images). Small on purpose: the no-argument demo must finish
# the whole pipeline in under 5 minutes on 2 CPU cores (numbers in the training module docs).
SYNTHETIC_SIZES = {"train": 160, "val": 80, "test": 200}
SYNTHETIC_ALIASES = {"synthetic": "target", "synthetic-target": "target", "synthetic-source": "source"}


def _synthetic(domain: str, *, image_size: int, seed: int, sizes: dict[str, int]) -> tuple[dict[str, Split], list[str]]:
    splits = {}
    for stream, name in enumerate(("train", "val", "test")):
        imgs, labels = synthetic.generate(sizes[name], image_size=image_size, domain=domain,
                                          seed=seed, stream=stream)
        splits[name] = Split(imgs, labels, [f"{domain}-{name}-{i:05d}" for i in range(len(labels))])
    return splits, list(synthetic.CLASS_NAMES)


def load_dataset(data: str | None = None, *, image_size: int, seed: int, data_fraction: float = 1.0,
                 group_pattern: str | None = None, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, synthetic_sizes: dict[str, int] | None = None) -> DatasetSplits:
    """Load target-domain data and split it.

    ``data``: None / "synthetic" / "synthetic-target" (the synthetic target domain),
    "synthetic-source", or a directory ``root/<class>/*.png|jpg``.
    ``image_size``: side in pixels every image is resized to (square).
    ``data_fraction`` in (0, 1]: stratified subsample of the TRAINING split only (at least one
    image per class), so val/test stay comparable across fractions.
    ``group_pattern``: regex on the file name (e.g. a patient id; first group if it has one);
    no group straddles two splits. ``val_fraction``/``test_fraction``: image-folder split shares.
    ``synthetic_sizes``: images per split for synthetic data (defaults: SYNTHETIC_SIZES).
    """
    fraction = check_fraction(data_fraction)
    if int(image_size) < 8:
        raise UsageError(f"--image-size must be at least 8 pixels, got {image_size}")
    image_size = int(image_size)
    key = "synthetic" if data is None else str(data)
    if key in SYNTHETIC_ALIASES:
        domain = SYNTHETIC_ALIASES[key]
        sizes = {**SYNTHETIC_SIZES, **(synthetic_sizes or {})}
        if group_pattern is not None:
            raise UsageError("--group-pattern applies to an image folder, not to synthetic data")
        splits, class_names = _synthetic(domain, image_size=image_size, seed=seed, sizes=sizes)
        source = {"kind": "synthetic", "domain": synthetic.domain_description(domain)}
    else:
        files, labels, class_names = imagefolder.scan(key)
        root = Path(key)
        names = [f.relative_to(root).as_posix() for f in files]
        # without a pattern each file is its own group: key it by relative path, since two class
        # directories may hold files of the same name
        groups = group_keys([f.name for f in files], group_pattern) if group_pattern else names
        idx = split_indices(labels, groups, seed=seed, val_fraction=val_fraction,
                            test_fraction=test_fraction, class_names=class_names)
        splits = {}
        for name, ix in idx.items():
            sel = [files[i] for i in ix]
            splits[name] = Split(imagefolder.load_images(sel, image_size), labels[ix],
                                 [names[i] for i in ix])
        source = {"kind": "imagefolder", "root": str(root.resolve()), "group_pattern": group_pattern,
                  "n_groups": len(set(groups)), "val_fraction": val_fraction,
                  "test_fraction": test_fraction}

    full_train = len(splits["train"])
    keep = stratified_fraction(splits["train"].labels, fraction, seed)
    splits["train"] = splits["train"].subset(keep)

    nc = len(class_names)
    description = {
        **source,
        "data": key,
        "image_size_px": image_size,
        "seed": seed,
        "class_names": class_names,
        "data_fraction": fraction,
        "train_images_before_fraction": full_train,
        "counts": {n: {"total": len(s), "per_class": dict(zip(class_names, s.class_counts(nc)))}
                   for n, s in splits.items()},
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], class_names,
                         ImagePreprocess(image_size=(image_size, image_size)), description)


def calibration_batch(split: Split, preprocess: ImagePreprocess, n: int = 16, seed: int = 0) -> np.ndarray:
    """float32 n x 3 x H x W from a seeded, class-balanced sample of ``split`` (for INT8
    calibration and export validation), built with the serving preprocessing."""
    rng = np.random.default_rng([seed, 13])
    classes = np.unique(split.labels)
    per = [rng.permutation(np.flatnonzero(split.labels == c)) for c in classes]
    # interleave the classes so any prefix is as balanced as the split allows
    order = [int(col[j]) for j in range(max(map(len, per), default=0)) for col in per if j < len(col)]
    picked = order[:n]
    return split.subset(sorted(picked)).to_nchw(preprocess)
