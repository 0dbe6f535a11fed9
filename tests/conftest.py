"""Shared fixtures. Kept small: tiny synthetic data, an isolated model cache, one thread."""

from __future__ import annotations

import os

import pytest

# The test box has 2 cores shared by many jobs; torch reads this when it starts its thread pool.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's ~/.cache/hackforge-edge."""
    monkeypatch.setenv("HF_EDGE_CACHE", str(tmp_path_factory.mktemp("hf-edge-cache")))


@pytest.fixture(autouse=True)
def _short_energy_window(monkeypatch):
    """Profiling keeps each batch's energy window open >= 0.5 s so the meter's ticks resolve it;
    tests check the mechanics (every run in the window counted), not the estimate's precision,
    and a profiled bundle would otherwise spend ~4.5 s in these windows."""
    import importlib

    # the module, not the package's lazy `measure` function of the same name
    monkeypatch.setattr(importlib.import_module("hackforge_edge.profiling.measure"),
                        "MIN_ENERGY_WINDOW_S", 0.05)


@pytest.fixture(scope="session")
def tiny_splits():
    """Synthetic target data at 32 px: 24 train / 12 val / 12 test images, balanced."""
    from hackforge_edge.data.loader import load_dataset

    return load_dataset(image_size=32, seed=0, synthetic_sizes={"train": 24, "val": 12, "test": 12})
