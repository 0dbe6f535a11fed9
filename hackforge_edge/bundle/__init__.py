"""The run bundle: one directory per run, read by everything downstream.

``files``   atomic writes, hashes, the manifest writer (stdlib only)
``schema``  :class:`Artifact`, the pydantic base of every bundle file (schema-versioned)
``manifest`` :class:`Manifest` (manifest.json); ``registry`` every bundle file's schema
``reader``  :class:`Bundle`, the one verifying reader: ``Bundle.open(path)`` refuses an
            incomplete bundle and any artifact whose sha256 differs from the manifest

The names below are the bundle's file-level API; nothing heavy is imported here.
"""

from hackforge_edge.bundle.files import (
    LABELS,
    MANIFEST,
    MODEL,
    PREPROCESS,
    artifact_hashes,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    prepare_out_dir,
    read_json,
    refresh_manifest,
    sha256_file,
    utc_now,
    write_manifest,
)
from hackforge_edge.bundle.reader import Bundle, ModelRef, open_model

__all__ = [
    "Bundle", "ModelRef", "open_model",
    "LABELS", "MANIFEST", "MODEL", "PREPROCESS", "artifact_hashes", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_text", "dumps_json", "prepare_out_dir", "read_json",
    "refresh_manifest", "sha256_file", "utc_now", "write_manifest",
]
