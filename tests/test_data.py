"""Data: synthetic domains, image folders, splits, fractions and their errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hackforge_edge.data import synthetic
from hackforge_edge.data.loader import calibration_batch, load_dataset
from hackforge_edge.data.splits import split_indices
from hackforge_edge.errors import DataError, UsageError


def test_synthetic_is_seeded_uint8_rgb_and_balanced():
    a, la = synthetic.generate(10, image_size=24, domain="target", seed=3)
    b, lb = synthetic.generate(10, image_size=24, domain="target", seed=3)
    c, _ = synthetic.generate(10, image_size=24, domain="target", seed=4)
    assert a.dtype == np.uint8 and a.shape == (10, 24, 24, 3)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert sorted(np.bincount(la).tolist()) == [5, 5]
    # the per-process cache hands out copies and matches a fresh, uncached render
    a[:] = 0
    again, _ = synthetic.generate(10, image_size=24, domain="target", seed=3)
    fresh, _ = synthetic._generate(10, image_size=24, domain="target", seed=3)
    assert np.array_equal(again, b) and np.array_equal(fresh, b)


def test_domains_differ_in_stain_and_sharpness():
    src, _ = synthetic.generate(12, image_size=32, domain="source", seed=0)
    tgt, _ = synthetic.generate(12, image_size=32, domain="target", seed=0)
    colour_gap = np.abs(src.reshape(-1, 3).mean(0) - tgt.reshape(-1, 3).mean(0)).max()
    assert colour_gap > 10  # grey levels: a visible stain shift

    def grad_energy(x):
        g = x.astype(np.float32).mean(-1)
        return np.abs(np.diff(g, axis=2)).mean()

    # without sensor noise (which adds fine detail) the target's optical blur shows
    quiet = {d: synthetic.generate(12, image_size=32, seed=0,
                                   domain=replace(synthetic.DOMAINS[d], noise_std=0.0))[0]
             for d in ("source", "target")}
    assert grad_energy(quiet["target"]) < 0.8 * grad_energy(quiet["source"])


def test_malignant_tiles_hold_more_nuclear_stain():
    imgs, labels = synthetic.generate(40, image_size=32, domain="source", seed=1)
    dark = (imgs.astype(np.float32).mean(-1) < 120).mean(axis=(1, 2))  # nuclei are the dark pixels
    assert dark[labels == 1].mean() > 1.3 * dark[labels == 0].mean()


def test_load_dataset_synthetic_counts_and_description(tiny_splits):
    s = tiny_splits
    assert s.class_names == ["benign", "malignant"]
    assert (len(s.train), len(s.val), len(s.test)) == (24, 12, 12)
    assert s.train.images.shape[1:] == (32, 32, 3) and s.train.images.dtype == np.uint8
    assert s.preprocess.image_size == (32, 32)
    d = s.description
    assert d["kind"] == "synthetic" and d["domain"]["name"] == "target"
    assert d["counts"]["test"]["per_class"] == {"benign": 6, "malignant": 6}
    x = s.test.to_nchw(s.preprocess, limit=3)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32


def test_test_split_does_not_depend_on_train_size():
    a = load_dataset(image_size=16, seed=0, synthetic_sizes={"train": 6, "val": 4, "test": 6})
    b = load_dataset(image_size=16, seed=0, synthetic_sizes={"train": 10, "val": 4, "test": 6})
    assert np.array_equal(a.test.images, b.test.images)


def test_data_fraction_subsamples_train_only_stratified():
    full = load_dataset(image_size=16, seed=0, synthetic_sizes={"train": 20, "val": 4, "test": 4})
    part = load_dataset(image_size=16, seed=0, data_fraction=0.05,
                        synthetic_sizes={"train": 20, "val": 4, "test": 4})
    assert np.bincount(part.train.labels).tolist() == [1, 1]  # at least one per class
    assert np.array_equal(part.test.images, full.test.images)
    assert part.description["data_fraction"] == 0.05
    assert part.description["train_images_before_fraction"] == 20


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, "x"])
def test_data_fraction_out_of_range_is_usage_error(bad):
    with pytest.raises(UsageError, match="data-fraction"):
        load_dataset(image_size=16, seed=0, data_fraction=bad)


def _png(path: Path, value: int, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """root/benign, root/malignant: 4 patients per class, 3 images each, names like BreaKHis."""
    root = tmp_path / "data"
    for c, cls in enumerate(["benign", "malignant"]):
        for p in range(4):
            for k in range(3):
                _png(root / cls / f"SOB_{cls[0]}_pt{c}{p}-{k}.png", 100 * c + 10 * p + k)
    return root


def test_imagefolder_stratified_split_and_exact_resize(folder):
    s = load_dataset(str(folder), image_size=12, seed=0)
    assert s.class_names == ["benign", "malignant"]
    assert len(s.train) + len(s.val) + len(s.test) == 24
    for split in (s.train, s.val, s.test):
        assert set(split.labels.tolist()) == {0, 1}
    # training tensors equal what a server computes from the original file
    name = s.test.names[0]
    from_file = s.preprocess.pil_to_chw(Image.open(folder / name))
    assert np.array_equal(s.test.to_nchw(s.preprocess)[0], from_file)
    assert s.description["kind"] == "imagefolder"


def test_group_pattern_keeps_patients_in_one_split(folder):
    s = load_dataset(str(folder), image_size=8, seed=1, group_pattern=r"(pt\d+)-")
    seen = {}
    for split_name in ("train", "val", "test"):
        for n in s.split(split_name).names:
            pid = n.split("_pt")[1].split("-")[0]
            assert seen.setdefault(pid, split_name) == split_name
    assert s.description["n_groups"] == 8


def test_group_pattern_must_match_every_file(folder):
    with pytest.raises(DataError, match="does not match"):
        load_dataset(str(folder), image_size=8, seed=0, group_pattern=r"patient\d+")


def test_missing_path_is_data_error(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_dataset(str(tmp_path / "nope"), image_size=8, seed=0)


def test_one_class_folder_is_data_error(tmp_path):
    for k in range(3):
        _png(tmp_path / "only" / f"{k}.png", k)
    with pytest.raises(DataError, match="at least two class"):
        load_dataset(str(tmp_path), image_size=8, seed=0)


def test_unreadable_image_names_the_file(folder):
    bad = folder / "malignant" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(str(folder), image_size=8, seed=0)


def test_tiny_class_is_data_error(tmp_path):
    for k in range(4):
        _png(tmp_path / "a" / f"{k}.png", k)
    for k in range(2):
        _png(tmp_path / "b" / f"{k}.png", 10 + k)
    with pytest.raises(DataError, match="class 'b' has 2 images"):
        load_dataset(str(tmp_path), image_size=8, seed=0)


def test_split_indices_is_seeded_and_disjoint():
    labels = np.array([0] * 20 + [1] * 20)
    a = split_indices(labels, [str(i) for i in range(40)], seed=5)
    b = split_indices(labels, [str(i) for i in range(40)], seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    allidx = np.concatenate(list(a.values()))
    assert sorted(allidx.tolist()) == list(range(40))
    assert np.bincount(labels[a["test"]]).tolist() == [3, 3]


def test_calibration_batch_is_class_balanced(tiny_splits):
    x = calibration_batch(tiny_splits.test, tiny_splits.preprocess, n=4)
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32


def test_light_modules_do_not_import_torch():
    code = ("import sys, hackforge_edge.data, hackforge_edge.training.metrics, hackforge_edge.models.registry, "
            "hackforge_edge.strategies.registry, hackforge_edge.models.source, hackforge_edge.training.loop; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
