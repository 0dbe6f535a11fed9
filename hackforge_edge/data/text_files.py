"""Labelled text from CSV or JSONL files, checked row by row before any work (stdlib only).

A CSV needs a header row; a JSONL file holds one JSON object per line. Both need a text column
and a label column (names chosen by the caller), and may have a group column (a patient id:
no group straddles two splits). Every problem is a one-line :class:`DataError` naming the file,
the row and what is wrong: a file that is not UTF-8, an empty file, a missing column, an empty
or non-string text, an empty label, a single class.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from hackforge_edge.errors import DataError

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class TextTable:
    """Rows of a text file: texts, label strings, group ids (None without a group column)."""

    path: str
    texts: list[str]
    labels: list[str]
    groups: list[str] | None
    columns: list[str]


def is_text_file(data: str | None) -> bool:
    return data is not None and Path(data).suffix.lower() in SUFFIXES


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"--data {path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"--data {path}: is a directory; text data is a .csv or .jsonl file") from None
    try:
        text = raw.decode("utf-8-sig")  # a BOM from spreadsheet exports is not part of the header
    except UnicodeDecodeError as exc:
        raise DataError(f"--data {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}); re-save it as UTF-8") from None
    if not text.strip():
        raise DataError(f"--data {path}: empty file (no rows)")
    return text


def _rows_csv(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c for c in (reader.fieldnames or [])]
    try:
        rows = [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header
    except csv.Error as exc:
        raise DataError(f"--data {path}: not a readable CSV ({exc})") from None
    return columns, rows


def _rows_jsonl(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict]]]:
    rows, columns = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"--data {path}: line {n} is not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"--data {path}: line {n} is a JSON {type(obj).__name__}, expected an object")
        columns.extend(k for k in obj if k not in columns)
        rows.append((n, obj))
    return columns, rows


def read_text_table(data: str | Path, *, text_column: str = "text", label_column: str = "label",
                    group_column: str | None = None) -> TextTable:
    """Read and check ``data`` (.csv, .jsonl or .ndjson). Labels are kept as strings."""
    path = Path(data)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"--data {path}: text data must be .csv or .jsonl (got {path.suffix or 'no suffix'!r})")
    text = _decode(path)
    columns, rows = (_rows_csv if kind == "csv" else _rows_jsonl)(path, text)
    if not rows:
        raise DataError(f"--data {path}: empty file (a header but no rows)")
    wanted = [("--text-column", text_column), ("--label-column", label_column)]
    if group_column:
        wanted.append(("--group-column", group_column))
    for flag, col in wanted:
        if col not in columns:
            raise DataError(f"--data {path}: no {col!r} column (columns: {', '.join(columns) or 'none'}); "
                            f"name it with {flag}")
    texts, labels, groups = [], [], [] if group_column else None
    where = "line" if kind == "jsonl" else "row on line"
    for line, row in rows:
        value = row.get(text_column)
        if not isinstance(value, str):
            what = "missing" if value is None else f"a {type(value).__name__}, not a string"
            raise DataError(f"--data {path}: {where} {line}: text is {what}")
        if not value.strip():
            raise DataError(f"--data {path}: {where} {line}: empty text")
        label = row.get(label_column)
        if label is None or isinstance(label, (dict, list)) or not str(label).strip():
            raise DataError(f"--data {path}: {where} {line}: empty or invalid label {label!r}")
        texts.append(value)
        labels.append(str(label).strip())
        if groups is not None:
            g = row.get(group_column)
            if g is None or not str(g).strip():
                raise DataError(f"--data {path}: {where} {line}: empty group ({group_column!r})")
            groups.append(str(g).strip())
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"--data {path}: only one class ({classes[0]!r}) in {label_column!r}; "
                        "need at least 2")
    return TextTable(str(path), texts, labels, groups, columns)
