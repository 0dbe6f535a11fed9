"""Checks made before any profiling work: a readable ONNX file and known hardware profiles.

Both fail with one line (a :class:`~hackforge_edge.errors.HFEdgeError` subclass) so that the
CLI exits with code 2 before anything is measured or written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hackforge_edge.errors import ModelFileError, ProfileError, UsageError


def check_onnx(path: Path) -> None:
    """Fail early with one line when the file is not a readable ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  protobuf raises several unrelated types on bad bytes
        raise ModelFileError(f"{path}: not a readable ONNX model (truncated or corrupt?): "
                             f"{type(exc).__name__}") from None
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"{path}: ONNX file has an empty graph (truncated or corrupt?)")


def check_profiles(names: Sequence[str]) -> list[str]:
    """Known names or existing YAML paths; an unknown one lists the known names."""
    from hackforge_edge.profiling.hardware import list_profiles

    if not names:
        raise UsageError("no hardware profile given (use --profile NAME_OR_YAML)")
    known = list_profiles()
    for n in names:
        looks_like_path = n.endswith((".yaml", ".yml")) or os.sep in n
        if looks_like_path:
            if not Path(n).is_file():
                raise ProfileError(f"profile file {n}: not found")
        elif n not in known:
            raise ProfileError(f"unknown profile {n!r} (known: {', '.join(known)}; or pass a YAML path)")
    return list(names)
