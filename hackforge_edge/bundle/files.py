"""The run bundle: one directory per ``train-and-export`` run, read by everything downstream.

Layout (DESIGN.md): manifest.json (written last), model.onnx, labels.json, preprocess.json,
metrics.json, training_carbon.json, export_validation.json, profile.json, feasibility.json,
report.{md,html,json}, figures/*.png. Every artifact is written atomically (temp file + rename),
so a crash never leaves a half-written file under its final name, and a bundle without a
manifest is known to be incomplete.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hackforge_edge.errors import BundleError, ModelFileError

MANIFEST = "manifest.json"
MODEL = "model.onnx"
LABELS = "labels.json"
PREPROCESS = "preprocess.json"
SCHEMA_VERSION = 1

# Distributions whose versions every manifest records (absent ones are recorded as null).
_TRACKED_DISTRIBUTIONS = (
    "hackforge-edge", "torch", "torchvision", "transformers", "peft", "onnx", "onnxscript",
    "onnxruntime", "onnxruntime-gpu", "numpy",
)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with second resolution."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    # numpy scalars/arrays, Paths and dataclasses turn up in results; make them plain JSON
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN/inf are refused: use null)."""
    return atomic_write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    """Write manifest.json last: versions, resolved config, seed, sha256 of every artifact."""
    run_dir = Path(run_dir)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": run_dir.name,
        "started_at": started_at,
        "finished_at": utc_now(),
        "versions": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "processor": platform.processor() or None},
        "seed": seed,
        "config": config,
        **(extra or {}),
        "artifacts": artifact_hashes(run_dir),
    }
    return atomic_write_json(run_dir / MANIFEST, manifest)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: an ONNX file and, when it came from a bundle, the bundle directory."""

    onnx_path: Path
    bundle_dir: Path | None

    def sidecar(self, name: str) -> Path | None:
        """Path of a bundle file (labels.json, preprocess.json, ...) if it exists."""
        if self.bundle_dir is None:
            return None
        p = self.bundle_dir / name
        return p if p.is_file() else None

    def read_sidecar(self, name: str) -> Any | None:
        p = self.sidecar(name)
        return read_json(p) if p else None

    @property
    def manifest(self) -> dict | None:
        return self.read_sidecar(MANIFEST)


def resolve_model(path: str | os.PathLike, require_manifest: bool = False) -> ModelRef:
    """Accept a bundle directory or an .onnx file; check it exists and looks like ONNX."""
    path = Path(path)
    if path.is_dir():
        onnx_path = path / MODEL
        if not onnx_path.is_file():
            raise BundleError(f"{path}: not a bundle (no {MODEL} inside)")
        if require_manifest and not (path / MANIFEST).is_file():
            raise BundleError(f"{path}: bundle is incomplete (no {MANIFEST}; the run did not finish)")
        return ModelRef(onnx_path=onnx_path, bundle_dir=path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    if path.suffix.lower() != ".onnx":
        raise ModelFileError(f"{path}: expected an .onnx file or a bundle directory")
    bundle_dir = path.parent if (path.parent / MANIFEST).is_file() and path.name == MODEL else None
    return ModelRef(onnx_path=path, bundle_dir=bundle_dir)


def refresh_manifest(run_dir: str | os.PathLike, *, command: str) -> Path | None:
    """Re-hash a complete bundle's artifacts after a later command rewrote some of them.

    A bundle without a manifest stays incomplete (nothing is written). Otherwise the manifest
    keeps its history and gains an ``amended`` entry: when, by which command, which files.
    """
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    manifest = read_json(path)
    before = manifest.get("artifacts", {})
    after = artifact_hashes(run_dir)
    changed = sorted(k for k in after if before.get(k, {}).get("sha256") != after[k]["sha256"])
    if not changed:
        return path
    manifest["artifacts"] = after
    manifest.setdefault("amended", []).append(
        {"at": utc_now(), "command": command, "files": changed})
    return atomic_write_json(path, manifest)
