"""The one way to open a run bundle: ``Bundle.open(path)`` verifies before anything is read.

A directory without ``manifest.json`` is an incomplete bundle (the run was interrupted, or is
still going) and is refused unless the caller passes ``allow_incomplete``. Every artifact the
manifest lists must exist with the sha256 the manifest recorded; a file that changed after
the run (a model swapped in, one byte flipped) is refused, naming the file. A hospital must
never serve the wrong model silently.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

from hackforge_edge.bundle.files import (
    LABELS,
    MANIFEST,
    MODEL,
    PREPROCESS,
    read_json,
    refresh_manifest,
    sha256_file,
)
from hackforge_edge.errors import BundleError, ModelFileError

log = logging.getLogger(__name__)
A = TypeVar("A")

INCOMPLETE_HINT = "re-run, or pass --allow-incomplete"


@dataclass
class Bundle:
    """An opened (and, unless ``allow_incomplete``, verified) run bundle directory.

    ``manifest`` is the typed :class:`~hackforge_edge.bundle.manifest.Manifest`, or None for an
    incomplete bundle opened with ``allow_incomplete`` (or one being written, ``in_progress``).
    """

    dir: Path
    manifest: Any  # Manifest | None (imported lazily: pydantic stays off the CLI's import path)
    verified: bool
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | os.PathLike, *, allow_incomplete: bool = False,
             rewrites: Iterable[str] = ()) -> "Bundle":
        """Open ``path`` (a bundle directory); raise :class:`BundleError` unless it is complete
        and every artifact matches the manifest's sha256. With ``allow_incomplete`` the
        problems are logged as warnings and kept in ``problems`` instead.

        ``rewrites``: bundle-relative names or globs ("figures/*") the caller is about to
        write anew (report files for ``hf-edge report``): a changed or deleted copy of those
        is not a problem, since it is replaced, never blessed."""
        d = Path(path)
        if not d.is_dir():
            raise BundleError(f"{d}: not a bundle directory")
        problems: list[str] = []
        manifest = None
        if not (d / MANIFEST).is_file():
            problems.append(f"{d}: incomplete bundle (no {MANIFEST}: the run did not finish or "
                            "was interrupted)")
        else:
            from hackforge_edge.bundle.manifest import Manifest

            try:
                manifest = Manifest.read(d / MANIFEST)
            except BundleError as exc:
                problems.append(str(exc))
            else:
                problems.extend(_check_hashes(d, manifest, tuple(rewrites)))
        if problems and not allow_incomplete:
            raise BundleError(f"{problems[0]}; {INCOMPLETE_HINT}")
        for p in problems:
            log.warning("opening anyway (--allow-incomplete): %s", p)
        return cls(dir=d, manifest=manifest, verified=not problems, problems=problems)

    @classmethod
    def in_progress(cls, path: str | os.PathLike) -> "Bundle":
        """The bundle a recipe is writing right now (no manifest yet, nothing to verify): for
        the recipe's own later stages (profile, report), never for a reader."""
        return cls(dir=Path(path), manifest=None, verified=False, problems=[])

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def model_path(self) -> Path:
        return self.dir / MODEL

    def path(self, name: str) -> Path:
        return self.dir / name

    def has(self, name: str) -> bool:
        return (self.dir / name).is_file()

    def read_json(self, name: str) -> Any:
        """A JSON file of the bundle (BundleError when missing or invalid)."""
        return read_json(self.dir / name)

    def read_json_if_present(self, name: str) -> Any | None:
        return read_json(self.dir / name) if self.has(name) else None

    def read(self, artifact_cls: type[A]) -> A:
        """A typed artifact (``artifact_cls.FILENAME``), validated against its schema."""
        return artifact_cls.read(self.dir / artifact_cls.FILENAME)  # type: ignore[attr-defined]

    def read_if_present(self, artifact_cls: type[A]) -> A | None:
        """As :meth:`read`, or None when the bundle has no such file."""
        return self.read(artifact_cls) if self.has(artifact_cls.FILENAME) else None  # type: ignore[attr-defined]

    def refresh_manifest(self, *, command: str, rewritten) -> Path | None:
        """After ``command`` rewrote ``rewritten`` (paths) in this bundle: re-hash those files
        in the manifest. Only a bundle that was verified when opened is refreshed (one opened
        with problems keeps its manifest, so it still reads as incomplete or changed), and a
        listed file that changed without being rewritten is refused, never blessed."""
        if not self.verified:
            if self.manifest is not None:
                log.warning("%s: not re-hashing the manifest (the bundle did not verify when opened)",
                            self.dir)
            return None
        return refresh_manifest(self.dir, command=command, rewritten=rewritten)


def _check_hashes(d: Path, manifest: Any, rewrites: tuple[str, ...] = ()) -> list[str]:
    problems = []
    for rel, entry in sorted(manifest.artifacts.items()):
        if any(fnmatch.fnmatchcase(rel, pattern) for pattern in rewrites):
            continue
        p = d / rel
        if not p.is_file():
            problems.append(f"{p}: listed in the manifest but missing")
        elif sha256_file(p) != entry.sha256:
            problems.append(f"{p}: sha256 differs from the manifest (changed after the run)")
    return problems


@dataclass(frozen=True)
class ModelRef:
    """A model to profile, benchmark or serve: an ONNX file, and its bundle when it has one."""

    onnx_path: Path
    bundle: Bundle | None

    @property
    def bundle_dir(self) -> Path | None:
        return self.bundle.dir if self.bundle is not None else None


def open_model(path: str | os.PathLike | ModelRef, *, allow_incomplete: bool = False,
               rewrites: Iterable[str] = ()) -> ModelRef:
    """A bundle directory (opened and verified by :meth:`Bundle.open`) or a bare ``.onnx`` file.

    ``runs/x/model.onnx`` inside a bundle opens the bundle, so the same checks apply; so does
    a ``model.onnx`` next to other bundle files (labels.json, ...) without a manifest: that
    is an interrupted run, not a bare model. An already opened ModelRef is returned as is.
    """
    if isinstance(path, ModelRef):
        return path
    path = Path(path)
    if path.is_dir():
        b = Bundle.open(path, allow_incomplete=allow_incomplete, rewrites=rewrites)
        if not b.model_path.is_file():
            raise BundleError(f"{path}: not a bundle (no {MODEL} inside)")
        return ModelRef(onnx_path=b.model_path, bundle=b)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    if path.suffix.lower() != ".onnx":
        raise ModelFileError(f"{path}: expected an .onnx file or a bundle directory")
    if path.name == MODEL and any((path.parent / n).is_file() for n in _BUNDLE_MARKERS):
        return ModelRef(onnx_path=path, bundle=Bundle.open(path.parent, allow_incomplete=allow_incomplete,
                                                           rewrites=rewrites))
    return ModelRef(onnx_path=path, bundle=None)


# files only a bundle holds next to its model.onnx: their presence makes the directory a bundle
_BUNDLE_MARKERS = (MANIFEST, LABELS, PREPROCESS, "metrics.json", "export_validation.json",
                   "training_carbon.json")
