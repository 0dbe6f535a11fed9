"""The run bundle: one directory per ``train-and-export`` run, read by everything downstream.

Layout (DESIGN.md): manifest.json (written last), model.onnx, labels.json, preprocess.json,
metrics.json, training_carbon.json, export_validation.json, profile.json, feasibility.json,
report.{md,html,json}, figures/*.png. Every artifact is written atomically (temp file + rename),
so a crash never leaves a half-written file under its final name, and a bundle without a
manifest is known to be incomplete.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from hackforge_edge.bundle.io import (  # noqa: F401  (re-exported: the bundle's file API)
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    read_json,
    sha256_file,
    utc_now,
)
from hackforge_edge.errors import BundleError

MANIFEST = "manifest.json"
MODEL = "model.onnx"
LABELS = "labels.json"
PREPROCESS = "preprocess.json"

# Distributions whose versions every manifest records (absent ones are recorded as null).
_TRACKED_DISTRIBUTIONS = (
    "hackforge-edge", "torch", "torchvision", "transformers", "peft", "onnx", "onnxscript",
    "onnxruntime", "onnxruntime-gpu", "numpy",
)


def prepare_out_dir(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create the run directory; refuse an existing non-empty one unless ``overwrite``.

    With ``overwrite`` the old manifest is removed first, so the directory reads as incomplete
    until the new run finishes.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BundleError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(f"--out {out} exists and is not empty (pass --overwrite to replace it)")
        (out / MANIFEST).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in _TRACKED_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def artifact_hashes(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in the bundle except the manifest and temp files."""
    run_dir = Path(run_dir)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file() or p.name == MANIFEST or p.name.startswith(".") or p.suffix == ".tmp":
            continue
        rel = p.relative_to(run_dir).as_posix()
        out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def write_manifest(run_dir: str | os.PathLike, *, config: dict, seed: int, started_at: str,
                   extra: dict | None = None) -> Path:
    """Write manifest.json last: versions, resolved config, seed, sha256 of every artifact.

    ``extra``: the other :class:`~hackforge_edge.bundle.manifest.Manifest` fields (exporter,
    params, weights, training, data, ...); an unknown field is refused by the model.
    """
    from hackforge_edge.bundle.manifest import Manifest

    run_dir = Path(run_dir)
    manifest = Manifest(
        name=run_dir.name, started_at=started_at, finished_at=utc_now(),
        versions=package_versions(),
        platform={"system": platform.system(), "machine": platform.machine(),
                  "processor": platform.processor() or None},
        seed=seed, config=config, **(extra or {}), artifacts=artifact_hashes(run_dir))
    return manifest.write(run_dir)


def refresh_manifest(run_dir: str | os.PathLike, *, command: str,
                     rewritten: Iterable[str | os.PathLike]) -> Path | None:
    """Re-hash the files ``command`` just wrote into a complete bundle; bless nothing else.

    ``rewritten``: the paths the command wrote (absolute or relative to ``run_dir``). Every
    other file the manifest lists must still match its recorded sha256, else BundleError (a
    file changed behind the command's back is never blessed). A bundle without a manifest
    stays incomplete (nothing is written). The manifest keeps its history and gains an
    ``amended`` entry: when, by which command, which files.
    """
    from hackforge_edge.bundle.manifest import Amendment, ArtifactEntry, Manifest

    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        return None
    manifest = Manifest.read(run_dir / MANIFEST)
    mine = {_relative(run_dir, p) for p in rewritten}
    mine.discard(None)
    for rel, entry in manifest.artifacts.items():
        p = run_dir / rel
        if rel not in mine and (not p.is_file() or sha256_file(p) != entry.sha256):
            raise BundleError(f"{p}: sha256 differs from the manifest (changed after the run); "
                              f"{command} did not write it, so the manifest is left as it was")
    changed = []
    for rel in sorted(mine):
        p = run_dir / rel
        if not p.is_file():
            continue
        entry = ArtifactEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
        if manifest.sha256_of(rel) != entry.sha256:
            changed.append(rel)
        manifest.artifacts[rel] = entry
    if not changed:
        return run_dir / MANIFEST
    manifest.amended.append(Amendment(at=utc_now(), command=command, files=changed))
    return manifest.write(run_dir)


def _relative(run_dir: Path, p: str | os.PathLike) -> str | None:
    """``p`` as a bundle-relative posix path, or None when it lies outside the bundle."""
    path = Path(p)
    if not path.is_absolute():
        path = run_dir / path
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return None
