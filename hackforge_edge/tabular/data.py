"""Tabular transfer tasks: a source table and a target table with the same columns.

Embedded real data, no download (scikit-learn ships it):

* ``sklearn:breast_cancer`` (classification, 569 tumours x 30 features): HackForge's "health
  screening" split, source = tumours with mean radius at or below the median, target = above;
* ``sklearn:diabetes`` (regression, 442 patients x 10, disease progression after one year):
  split by sex (source sex = 1, target sex = 2); stands in for HackForge's California housing
  task, which needs a download;
* ``sklearn:wine`` (classification, 178 wines x 13, 3 cultivars): source = alcohol at or below
  the median, target = above.

User tables: ``--data target.csv --source-data source.csv --target-column y`` (CSV with a
header row; every feature column numeric and finite).

The target is split into train / test (stratified for classification) by the seed; a
``data_fraction`` keeps a stratified share of the target training rows (the low-data regime).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hackforge_edge.errors import DataError, UsageError

EMBEDDED = ("sklearn:breast_cancer", "sklearn:diabetes", "sklearn:wine")
PROBLEMS = ("classification", "regression")


@dataclass
class Table:
    X: np.ndarray          # float64 [n, d]
    y: np.ndarray          # int64 class indices, or float64 values


@dataclass
class TabularTask:
    """Everything a tabular transfer run needs, with where it came from."""

    name: str
    problem: str                      # classification | regression
    feature_names: list[str]
    class_names: list[str] | None     # classification only (index -> name)
    source: Table
    train: Table                      # target training rows (after data_fraction)
    test: Table                       # held-out target rows
    description: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)


def _embedded(name: str) -> tuple[Table, Table, list[str], list[str] | None, str, dict, dict]:
    from sklearn import datasets

    if name == "sklearn:breast_cancer":
        ds = datasets.load_breast_cancer()
        X, y = ds.data.astype(np.float64), ds.target.astype(np.int64)
        split = X[:, list(ds.feature_names).index("mean radius")]
        src = split <= np.median(split)
        desc = {"source": "tumours with mean radius <= median", "target": "mean radius > median",
                "origin": "scikit-learn load_breast_cancer (UCI Wisconsin diagnostic)"}
        units = {f: ("mm" if "radius" in f or "perimeter" in f else "mm^2" if "area" in f else "")
                 for f in ds.feature_names}
        return (Table(X[src], y[src]), Table(X[~src], y[~src]), list(ds.feature_names),
                [str(c) for c in ds.target_names], "classification", desc, units)
    if name == "sklearn:diabetes":
        ds = datasets.load_diabetes(scaled=False)
        X, y = ds.data.astype(np.float64), ds.target.astype(np.float64)
        sex = X[:, list(ds.feature_names).index("sex")]
        src = sex == 1
        keep = [i for i, f in enumerate(ds.feature_names) if f != "sex"]   # constant within a domain
        desc = {"source": "patients with sex = 1", "target": "sex = 2",
                "origin": "scikit-learn load_diabetes (Efron et al. 2004), unscaled",
                "note": "stands in for HackForge's California-housing task (a download)"}
        units = {"age": "years", "bmi": "kg/m^2", "bp": "mm Hg"}
        return (Table(X[src][:, keep], y[src]), Table(X[~src][:, keep], y[~src]),
                [ds.feature_names[i] for i in keep], None, "regression", desc, units)
    if name == "sklearn:wine":
        ds = datasets.load_wine()
        X, y = ds.data.astype(np.float64), ds.target.astype(np.int64)
        alc = X[:, list(ds.feature_names).index("alcohol")]
        src = alc <= np.median(alc)
        desc = {"source": "wines with alcohol <= median", "target": "alcohol > median",
                "origin": "scikit-learn load_wine (UCI)"}
        return (Table(X[src], y[src]), Table(X[~src], y[~src]), list(ds.feature_names),
                [str(c) for c in ds.target_names], "classification", desc, {"alcohol": "% vol"})
    raise UsageError(f"unknown embedded table {name!r} (known: {', '.join(EMBEDDED)})")


def read_csv_table(path: str | Path, target_column: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(feature names, float features [n, d], raw target strings) from a CSV with a header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if target_column not in header:
        raise DataError(f"{path}: no column {target_column!r} (columns: {', '.join(header)})")
    ti = header.index(target_column)
    names = [h for i, h in enumerate(header) if i != ti]
    X = np.empty((len(rows) - 1, len(names)), np.float64)
    target = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {r} has {len(row)} fields, the header has {len(header)}")
        vals = [v for i, v in enumerate(row) if i != ti]
        for j, v in enumerate(vals):
            try:
                X[r - 2, j] = float(v)
            except ValueError:
                raise DataError(f"{path}: line {r}, column {names[j]!r}: {v!r} is not a number") from None
        target.append(row[ti].strip())
    bad = ~np.isfinite(X)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise DataError(f"{path}: line {r + 2}, column {names[j]!r} is NaN or infinite "
                        f"({int(bad.sum())} such values)")
    return names, X, target


def _encode_target(values: list[str], problem: str | None, where: str) -> tuple[np.ndarray, list[str] | None, str]:
    numeric = True
    try:
        floats = np.array([float(v) for v in values])
    except ValueError:
        numeric = False
    if problem is None:   # inferred when unambiguous: non-numeric or few integer levels -> classes
        if not numeric:
            problem = "classification"
        elif np.all(floats == np.round(floats)) and len(np.unique(floats)) <= 10:
            problem = "classification"
        elif len(np.unique(floats)) > 10:
            problem = "regression"
        else:
            raise UsageError(f"{where}: cannot tell classification from regression; pass --problem")
    if problem == "regression":
        if not numeric or not np.isfinite(floats).all():
            raise DataError(f"{where}: a regression target must be finite numbers")
        return floats.astype(np.float64), None, problem
    classes = sorted(set(values), key=lambda v: (float(v) if numeric else 0.0, v))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], np.int64), classes, problem


def load_task(data: str, *, source_data: str | None = None, target_column: str | None = None,
              problem: str | None = None, seed: int = 0, data_fraction: float = 1.0,
              test_fraction: float = 0.3) -> TabularTask:
    """Load and split a tabular transfer task; every bad input is one DataError/UsageError."""
    if problem is not None and problem not in PROBLEMS:
        raise UsageError(f"--problem must be one of {', '.join(PROBLEMS)}, got {problem!r}")
    if not 0 < data_fraction <= 1:
        raise UsageError(f"--data-fraction must be in (0, 1], got {data_fraction}")
    units: dict[str, str] = {}
    if data.startswith("sklearn:"):
        source, target, names, classes, kind, desc, units = _embedded(data)
        if problem is not None and problem != kind:
            raise UsageError(f"{data} is a {kind} task, not {problem}")
        problem = kind
    else:
        if not source_data or not target_column:
            raise UsageError("a CSV target needs --source-data SOURCE.csv and --target-column NAME")
        names, Xt, yt_raw = read_csv_table(data, target_column)
        names_s, Xs, ys_raw = read_csv_table(source_data, target_column)
        if names_s != names:
            raise DataError(f"source and target have different columns: {source_data} has "
                            f"{', '.join(names_s)}; {data} has {', '.join(names)}")
        y_all, classes, problem = _encode_target(ys_raw + yt_raw, problem, f"{data}: {target_column}")
        source, target = Table(Xs, y_all[:len(ys_raw)]), Table(Xt, y_all[len(ys_raw):])
        desc = {"source": str(source_data), "target": str(data), "target_column": target_column}
    if problem == "classification":
        for what, t in (("source", source), ("target", target)):
            if len(np.unique(t.y)) < 2:
                raise DataError(f"the {what} table has a single class ({classes[int(t.y[0])]}); "
                                "classification needs at least two")
    train, test = _split(target, problem, seed, test_fraction)
    train = _fraction(train, problem, seed, data_fraction)
    desc.update({"dataset": data, "n_source": int(len(source.y)), "n_target_train": int(len(train.y)),
                 "n_target_test": int(len(test.y)), "data_fraction": data_fraction, "seed": seed})
    return TabularTask(name=data, problem=problem, feature_names=list(names), class_names=classes,
                       source=source, train=train, test=test, description=desc, units=units)


def _split(t: Table, problem: str, seed: int, test_fraction: float) -> tuple[Table, Table]:
    from sklearn.model_selection import train_test_split

    strat = t.y if problem == "classification" else None
    try:
        Xa, Xb, ya, yb = train_test_split(t.X, t.y, test_size=test_fraction, random_state=seed,
                                          stratify=strat)
    except ValueError as exc:
        raise DataError(f"the target table is too small to split into train and test ({exc})") from None
    return Table(Xa, ya), Table(Xb, yb)


def _fraction(t: Table, problem: str, seed: int, fraction: float) -> Table:
    if fraction >= 1:
        return t
    rng = np.random.default_rng([seed, 7])
    if problem == "regression":
        keep = rng.permutation(len(t.y))[: max(2, int(round(fraction * len(t.y))))]
    else:   # stratified, at least 2 rows per class so cross-validation can still run
        keep = np.concatenate([
            rng.permutation(idx)[: max(2, int(round(fraction * len(idx))))]
            for idx in (np.flatnonzero(t.y == c) for c in np.unique(t.y))])
    keep.sort()
    return Table(t.X[keep], t.y[keep])
