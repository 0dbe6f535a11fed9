"""``manifest.json``: what a run was (versions, config, seed, weights) and the sha256 of every
artifact. Written last by the recipe that made the bundle, so a bundle without one is
incomplete; :class:`~hackforge_edge.bundle.reader.Bundle` checks every file against it.

Open sub-documents (``config``, ``training``, ``data``, ``source_model``) are recorded as the
stage that owns them wrote them; the parts other commands rely on are typed here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from hackforge_edge.bundle.schema import Artifact


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class _Open(BaseModel):
    """A record whose known fields are typed and whose stage may add more (kept as written)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())


class ArtifactEntry(_Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Amendment(_Strict):
    """A later command that rewrote files of the finished bundle (profile, report)."""

    at: str
    command: str
    files: list[str]


class PlatformInfo(_Strict):
    system: str
    machine: str
    processor: Optional[str] = None


class Params(_Open):
    """Parameter accounting of the transfer strategy (strategies.registry.ParamCount)."""

    strategy: Optional[str] = None
    total_params: int
    trainable_params: int


class Weights(_Open):
    """Where the starting weights came from. ``kind``: none | imagenet | source | file.

    ``base_sha256``: sha256 of the starting backbone state_dict (every tensor but the head's,
    names + dtypes + shapes + bytes; see ``models.weights_hash``), for every start that is not a
    random init: two bundles with the same value were fine-tuned from the same base.
    """

    kind: str
    base_sha256: Optional[str] = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    base_sha256_scope: Optional[str] = None


class Manifest(Artifact):
    FILENAME: ClassVar[str] = "manifest.json"
    schema_version: Literal[1] = 1

    name: str
    started_at: str
    finished_at: str
    versions: dict[str, Optional[str]]
    platform: PlatformInfo
    seed: int
    config: dict[str, Any]
    exporter: Optional[str] = None
    exporter_fallback_reason: Optional[str] = None
    params: Optional[Params] = None
    weights: Optional[Weights] = None
    source_model: Optional[dict[str, Any]] = None
    training: Optional[dict[str, Any]] = None
    lr: Optional[float] = None
    data: Optional[dict[str, Any]] = None
    strategy_details: Optional[list[dict[str, Any]]] = Field(
        default=None, description="per strategy hook: progressive groups and schedule, EWC/L2-SP settings")
    gate: Optional[dict[str, Any]] = Field(
        default=None, description="negative-transfer gate: mode, verdict, message, recommended start, monitor")
    merge: Optional[dict[str, Any]] = Field(
        default=None, description="hf-edge merge: method, library and version, every setting, inputs")
    artifacts: dict[str, ArtifactEntry]
    amended: list[Amendment] = Field(default_factory=list)

    def sha256_of(self, rel: str) -> str | None:
        entry = self.artifacts.get(rel)
        return entry.sha256 if entry else None
