"""Data: synthetic histopathology-like domains, image folders, seeded splits (numpy, no torch)."""

from hackforge_edge.data.loader import SYNTHETIC_SIZES, calibration_batch, load_dataset
from hackforge_edge.data.splits import DatasetSplits, Split

__all__ = ["load_dataset", "calibration_batch", "DatasetSplits", "Split", "SYNTHETIC_SIZES"]
