"""Dataset containers and seeded, stratified, group-aware splitting (numpy only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.errors import DataError, UsageError

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """One split: ``images`` uint8 N x H x W x 3 RGB, ``labels`` int64 N, ``names`` N ids."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, idx: Sequence[int] | np.ndarray) -> "Split":
        idx = np.asarray(idx, dtype=np.int64)
        names = [self.names[i] for i in idx] if self.names else []
        return Split(self.images[idx], self.labels[idx], names)

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()

    def to_nchw(self, preprocess: ImagePreprocess, limit: int | None = None) -> np.ndarray:
        """float32 N x 3 x H x W batch built by the serving preprocessing (first ``limit``)."""
        images = self.images if limit is None else self.images[:limit]
        return preprocess.batch(list(images))


@dataclass
class DatasetSplits:
    """What ``load_dataset`` returns: three splits, class names, preprocessing, a description."""

    train: Split
    val: Split
    test: Split
    class_names: list[str]
    preprocess: ImagePreprocess
    description: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        if name not in SPLIT_NAMES:
            raise UsageError(f"unknown split {name!r}; valid: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def check_fraction(data_fraction: float) -> float:
    """Validate ``data_fraction`` in (0, 1]."""
    try:
        f = float(data_fraction)
    except (TypeError, ValueError):
        raise UsageError(f"--data-fraction must be a number in (0, 1], got {data_fraction!r}") from None
    if not (0.0 < f <= 1.0):
        raise UsageError(f"--data-fraction must be in (0, 1], got {data_fraction}")
    return f


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified ``fraction`` of ``labels``, at least one per present class."""
    fraction = check_fraction(fraction)
    if fraction == 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 7])
    keep: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(keep))


def group_keys(names: Sequence[str], pattern: str) -> list[str]:
    """Group id per file name: the regex's first group (or the whole match) of ``pattern``."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--group-pattern {pattern!r} is not a valid regex ({exc})") from None
    keys = []
    for n in names:
        m = rx.search(n)
        if m is None:
            raise DataError(f"--group-pattern {pattern!r} does not match file name {n!r}")
        keys.append(m.group(1) if rx.groups else m.group(0))
    return keys


def split_indices(labels: np.ndarray, groups: Sequence[str], *, seed: int,
                  val_fraction: float = 0.15, test_fraction: float = 0.15,
                  class_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Seeded stratified train/val/test index arrays; no group straddles two splits.

    Groups (patients, slides) are stratified by their majority label and dealt out in a seeded
    order: to test until it holds ``test_fraction`` of that stratum's images, then to val, the
    rest to train, always leaving at least one group for each later split. Without a group
    pattern every file is its own group, which makes this an exact stratified split.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError(f"val/test fractions must be in (0, 1) and sum below 1, got "
                         f"{val_fraction}/{test_fraction}")
    labels = np.asarray(labels)
    uniq_groups: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        uniq_groups.setdefault(g, []).append(i)
    strata: dict[int, list[str]] = {}
    for g, idx in uniq_groups.items():
        majority = int(np.bincount(labels[idx]).argmax())
        strata.setdefault(majority, []).append(g)

    rng = np.random.default_rng([seed, 11])
    out: dict[str, list[int]] = {s: [] for s in SPLIT_NAMES}
    grouped = len(uniq_groups) < len(labels)
    for c in sorted(strata):
        gs = sorted(strata[c])  # sorted first: dict order must not leak into the split
        cname = class_names[c] if class_names else str(c)
        if len(gs) < 3:
            unit = "groups" if grouped else "images"
            raise DataError(f"class {cname!r} has {len(gs)} {unit}; need at least 3 "
                            f"(one each for train, val and test)")
        rng.shuffle(gs)
        n_images = sum(len(uniq_groups[g]) for g in gs)
        want_test = max(1, round(test_fraction * n_images))
        want_val = max(1, round(val_fraction * n_images))
        n_test = n_val = 0
        for k, g in enumerate(gs):
            left = len(gs) - k  # groups not yet dealt, including this one
            size = len(uniq_groups[g])
            if n_test < want_test and left > 2:
                out["test"].extend(uniq_groups[g])
                n_test += size
            elif n_val < want_val and left > 1:
                out["val"].extend(uniq_groups[g])
                n_val += size
            else:
                out["train"].extend(uniq_groups[g])
    return {s: np.sort(np.asarray(v, dtype=np.int64)) for s, v in out.items()}
