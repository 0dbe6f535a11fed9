"""The base of every bundle file: a pydantic model with a file name and a schema version.

Producers build an artifact and ``write`` it (atomically); consumers ``read`` it back and
get the typed model, never a dict to walk. A file whose ``schema_version`` this version of
hf-edge does not know is a clear one-line error naming the file, and so is a file that does
not match its schema (the first offending field is named).

A subclass declares ``FILENAME`` and pins its version with a ``Literal`` default::

    class Metrics(Artifact):
        FILENAME: ClassVar[str] = "metrics.json"
        schema_version: Literal[1] = 1
        accuracy: float
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hackforge_edge.bundle.io import atomic_write_json
from hackforge_edge.errors import BundleError

A = TypeVar("A", bound="Artifact")


class Artifact(BaseModel):
    """A bundle file. Unknown fields are refused so that producers and readers agree."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    FILENAME: ClassVar[str] = ""
    schema_version: int = 1

    @classmethod
    def supported_version(cls) -> int:
        """The one schema version this class reads and writes (its field default)."""
        return int(cls.model_fields["schema_version"].default)

    @classmethod
    def from_json(cls: type[A], data: Any, *, source: str | None = None) -> A:
        """Validate already-parsed JSON; ``source`` names the file in errors."""
        where = source or cls.FILENAME or cls.__name__
        if not isinstance(data, dict):
            raise BundleError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != cls.supported_version():
            raise BundleError(f"{where}: schema version {version!r} is not supported by this "
                              f"hf-edge (it reads version {cls.supported_version()}); "
                              "re-run the command that wrote it, or upgrade hf-edge")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
            raise BundleError(f"{where}: does not match the {cls.__name__} schema at {loc}: "
                              f"{err.get('msg')} ({len(exc.errors())} problem(s))") from None

    @classmethod
    def read(cls: type[A], path: str | os.PathLike) -> A:
        """Read and validate ``path`` (a file, or a directory holding ``FILENAME``)."""
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path}: file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_json(data, source=str(path))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (what ``write`` puts on disk)."""
        return self.model_dump(mode="json")

    def write(self, directory: str | os.PathLike, filename: str | None = None) -> Path:
        """Atomically write this artifact into ``directory`` under ``FILENAME``."""
        return atomic_write_json(Path(directory) / (filename or self.FILENAME), self.to_json())
