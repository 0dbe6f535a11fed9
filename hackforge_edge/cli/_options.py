"""Command-line option parsing shared by several commands: text in, typed values out.

Errors are one-line :class:`~hackforge_edge.errors.UsageError`s naming the option.
"""

from __future__ import annotations

from typing import Sequence

from hackforge_edge.errors import UsageError


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,4,8"`` -> ``(1, 4, 8)``; every size a positive integer, duplicates dropped."""
    out: list[int] = []
    for item in text.split(","):
        try:
            b = int(item.strip())
        except ValueError:
            raise UsageError(f"--batch-sizes: {item!r} is not an integer (expected e.g. 1,4,8)") from None
        if b < 1:
            raise UsageError(f"--batch-sizes: batch size must be >= 1, got {b}")
        if b not in out:
            out.append(b)
    if not out:
        raise UsageError("--batch-sizes: give at least one batch size (e.g. 1,4,8)")
    return tuple(out)


def parse_input_shapes(items: Sequence[str] | None) -> dict[str, list[int]] | None:
    """``["input=1x3x224x224", ...]`` -> ``{"input": [1, 3, 224, 224]}``; None when not given."""
    if not items:
        return None
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = [int(d) for d in dims.lower().replace(",", "x").split("x")] if sep else []
        except ValueError:
            shape = []
        if not name.strip() or not shape or any(d < 1 for d in shape):
            raise UsageError(f"--input-shape {item!r}: expected NAME=DxDx... with positive integers "
                             "(e.g. input=1x3x224x224)")
        shapes[name.strip()] = shape
    return shapes
