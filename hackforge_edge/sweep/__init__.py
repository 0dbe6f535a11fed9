"""Sweeps: models x strategies x data fractions x seeds, each cell one metered training run.

``spec`` (SweepSpec), ``cells`` (grid, ids, per-cell result files), ``executors`` (local
processes, Ray tasks), ``stats`` (intervals over seeds, paired tests), ``summary`` (results.csv,
summary.json/md/html, figures). The flow is :mod:`hackforge_edge.recipes.sweep`.
"""
