"""``SweepSpec``: the grid (models x strategies x fractions x seeds) and the training options
every cell shares, from flags or a YAML file, checked before any work is done.

``result_hash()`` covers everything that changes a cell's result (the grid and the training
options) and nothing that does not (where the output goes, whether bundles are exported), so
an output directory can tell whether a re-run continues the same sweep.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hackforge_edge.errors import UsageError
from hackforge_edge.training.defaults import DEFAULTS

EXPORT_CHOICES = ("none", "best", "all")
# fields that do not change any cell's result: left out of the hash
NOT_HASHED = frozenset({"name", "out", "export", "variants"})


class SweepSpec(BaseModel):
    """A sweep: each (model, strategy, fraction, seed) is one metered training run.

    Training options have train-and-export's meaning and defaults. ``synthetic_sizes`` (images
    per split: train/val/test) resizes the synthetic domains, e.g. for quick sweeps.
    ``export``: none (train, evaluate, meter only), best (re-run the cell with the best
    validation accuracy of each model through train-and-export), all (every cell).
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    models: list[str]
    strategies: list[str]
    fractions: list[float] = Field(default_factory=lambda: [1.0, 0.5, 0.25, 0.1])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    data: str | None = None
    synthetic_sizes: dict[str, int] | None = None
    image_size: int = DEFAULTS.image_size
    epochs: int = DEFAULTS.epochs
    weights: list[str] = Field(default_factory=lambda: [DEFAULTS.weights])  # starts: a grid axis
    device: str = "auto"
    lr: float = DEFAULTS.lr
    batch_size: int = DEFAULTS.batch_size
    lora_rank: int = DEFAULTS.lora_rank
    lora_alpha: float = DEFAULTS.lora_alpha
    group_pattern: str | None = None
    region: str | None = None
    grid_intensity: float | None = None   # g CO2e / kWh
    pue: float | None = None
    tdp_w: float | None = None
    export: Literal["none", "best", "all"] = "none"
    variants: list[str] = Field(default_factory=list)
    out: str | None = None

    @field_validator("weights", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, **fields: Any) -> "SweepSpec":
        """Validate ``fields`` (None values dropped: defaults apply); any problem is one UsageError."""
        clean = {k: v for k, v in fields.items() if v is not None}
        try:
            spec = cls(**clean)
        except ValidationError as exc:
            parts = [f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors()]
            raise UsageError("sweep spec: " + "; ".join(parts)) from None
        spec.check()
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "SweepSpec":
        """The spec in YAML file ``path``; non-None ``overrides`` (flags) win over the file."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise UsageError(f"--spec {p}: no such file")
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"--spec {p}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(doc, dict):
            raise UsageError(f"--spec {p}: expected a mapping of fields, got {type(doc).__name__}")
        return cls.build(**{**doc, **{k: v for k, v in overrides.items() if v is not None}})

    def check(self) -> None:
        """Every bad name and value in the spec, collected into one UsageError."""
        from hackforge_edge.models.registry import MODELS, WEIGHT_CHOICES
        from hackforge_edge.strategies.registry import STRATEGIES, StrategyOptions

        problems: list[str] = []
        for field, values in (("models", self.models), ("strategies", self.strategies),
                              ("fractions", self.fractions), ("seeds", self.seeds),
                              ("weights", self.weights)):
            if not values:
                problems.append(f"empty grid: no {field}")
            elif len(set(values)) != len(values):
                problems.append(f"{field} repeat a value: {values}")
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            problems.append(f"unknown model(s) {', '.join(bad)} (valid: {', '.join(sorted(MODELS))})")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            problems.append(f"unknown strategy(ies) {', '.join(bad)} (valid: {', '.join(STRATEGIES)})")
        bad = [f for f in self.fractions if not 0.0 < f <= 1.0]
        if bad:
            problems.append(f"fraction(s) outside (0, 1]: {', '.join(map(str, bad))}")
        bad = [w for w in self.weights if w not in WEIGHT_CHOICES and not Path(w).is_file()]
        if bad:
            problems.append(f"weights must be {', '.join(WEIGHT_CHOICES)} or existing .pt/.pth "
                            f"files; {', '.join(map(repr, bad))} is not")
        if self.synthetic_sizes is not None and self.export != "none":
            problems.append("export re-runs cells through train-and-export, which uses the default "
                            "synthetic sizes: drop synthetic_sizes or use export none")
        if self.synthetic_sizes is not None:
            unknown = set(self.synthetic_sizes) - {"train", "val", "test"}
            if unknown or any(int(v) < 2 for v in self.synthetic_sizes.values()):
                problems.append("synthetic_sizes: keys train/val/test, each >= 2 images")
        if self.data and self.data not in ("synthetic", "synthetic-target", "synthetic-source") \
                and not Path(self.data).is_dir():
            problems.append(f"data {self.data}: no such directory")
        if not problems:  # the shared training options, as train-and-export checks them
            try:
                StrategyOptions(lora_rank=self.lora_rank, lora_alpha=self.lora_alpha)
                self.train_config(self.cell_list()[0])
            except UsageError as exc:
                problems.append(str(exc))
        if problems:
            raise UsageError("sweep spec: " + "; ".join(problems))

    # ---- derived ------------------------------------------------------------------------
    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the cells' results (see module doc)."""
        return {k: v for k, v in self.model_dump().items() if k not in NOT_HASHED}

    def result_hash(self) -> str:
        """sha256 (hex, first 16) of the canonical JSON of :meth:`result_fields`."""
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def cell_list(self):
        from hackforge_edge.sweep.cells import expand

        return expand(self)

    def train_config(self, cell, *, out: str | None = None):
        """The train-and-export config of one cell (no profiling, no progress bars).
        Under scratch train-and-export ignores the weights (random init) whatever they say."""
        from hackforge_edge.recipes.train_and_export import TrainExportConfig

        return TrainExportConfig(
            model=cell.model, strategy=cell.strategy, data=self.data, image_size=self.image_size,
            epochs=self.epochs, data_fraction=cell.fraction, seed=cell.seed, weights=cell.weights,
            device=self.device, lr=self.lr, batch_size=self.batch_size, lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha, group_pattern=self.group_pattern,
            variants=tuple(self.variants), skip_profile=True, region=self.region,
            grid_intensity=self.grid_intensity, pue=self.pue, tdp_w=self.tdp_w, out=out,
            overwrite=True, progress=False)

    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out)
        return Path("sweeps") / (self.name or f"sweep-{self.result_hash()[:8]}")


def parse_list(text: str | None, kind: type, flag: str) -> list | None:
    """'a,b,c' -> [kind(a), ...]; None stays None (the spec's default applies)."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated {kind.__name__} values, got {text!r}") from None
