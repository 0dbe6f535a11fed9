"""Merge methods over task vectors. The tensor operations are PEFT's (``peft.utils.merge_utils``);
SLERP is written here because PEFT has none for whole models (mergekit has one, but pulls in a
large dependency tree for one formula).

Semantics (recorded in every merged bundle's manifest):

* ``task_arithmetic``: theta = base + lambda * sum_i w_i tau_i (PEFT ``task_arithmetic``).
* ``ties``: PEFT ``ties``: magnitude-prune each tau_i to ``density``, elect the sign by total
  mass, then the *mean* over the sign-agreeing tasks of w_i tau_i (weights [1, 1] give a mean,
  not a sum); theta = base + lambda * that.
* ``dare_linear`` / ``dare_ties``: PEFT's, random pruning to ``density`` with rescaling by
  1/density; the masks come from the global torch RNG, seeded with ``seed`` right before each
  call (per tensor: ``seed`` + tensor index), so a merge is reproducible.
* ``magnitude_prune``: PEFT ``magnitude_prune`` (magnitude pruning, then a weighted sum).
* ``linear``: the weighted average of the fine-tuned weights, sum_i w_i theta_i / sum_i w_i
  (= task arithmetic with normalised weights and lambda = 1).
* ``slerp``: two inputs, per tensor, spherical interpolation at t = w_2 / (w_1 + w_2) between
  the fine-tuned tensors; when |cos| > 0.9995 it falls back to linear interpolation (counted).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hackforge_edge.errors import UsageError
from hackforge_edge.merging.task_vectors import TaskVectors, apply_delta

if TYPE_CHECKING:
    import torch

METHODS = ("task_arithmetic", "ties", "dare_linear", "dare_ties", "magnitude_prune", "linear", "slerp")
DENSITY_METHODS = ("ties", "dare_linear", "dare_ties", "magnitude_prune")
SLERP_PARALLEL_COS = 0.9995  # above this |cos| SLERP is numerically linear interpolation (mergekit's DOT_THRESHOLD)


@dataclass(frozen=True)
class MergeSettings:
    """Every knob of a merge. ``weights``: one per input (None: the method's default);
    ``density`` in (0, 1]; ``lam``: scale of the merged task vector; ``seed``: DARE's RNG."""

    method: str
    n_inputs: int
    weights: tuple[float, ...] | None = None
    density: float = 0.5
    lam: float = 1.0
    seed: int = 0
    majority_sign_method: str = "total"

    def __post_init__(self) -> None:
        check_settings(self)

    def resolved_weights(self) -> tuple[float, ...]:
        """Defaults: 1/n for task_arithmetic, dare_linear, magnitude_prune and linear (an
        average); 1 for ties and dare_ties (PEFT's disjoint merge already averages); 0.5/0.5
        for slerp (t = 0.5)."""
        if self.weights is not None:
            return tuple(float(w) for w in self.weights)
        n = self.n_inputs
        if self.method in ("ties", "dare_ties"):
            return (1.0,) * n
        return (1.0 / n,) * n

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "weights": list(self.resolved_weights()),
                "weights_given": self.weights is not None,
                "density": self.density if self.method in DENSITY_METHODS else None,
                "lambda": self.lam if self.method not in ("linear", "slerp") else None,
                "seed": self.seed if self.method.startswith("dare") else None,
                "majority_sign_method": (self.majority_sign_method
                                         if self.method in ("ties", "dare_ties") else None)}


def check_settings(s: MergeSettings) -> None:
    """One-line UsageError for each bad combination (checked before any work)."""
    if s.method not in METHODS:
        raise UsageError(f"unknown merge method {s.method!r} (valid: {', '.join(METHODS)})")
    if s.n_inputs < 2:
        raise UsageError(f"a merge needs at least two input bundles, got {s.n_inputs}")
    if s.method == "slerp" and s.n_inputs != 2:
        raise UsageError(f"slerp interpolates between exactly two models, got {s.n_inputs} inputs")
    if not 0.0 < float(s.density) <= 1.0:
        raise UsageError(f"--density must be in (0, 1], got {s.density} "
                         "(at 0 PEFT's DARE divides by zero and returns NaN)")
    if s.weights is not None:
        if len(s.weights) != s.n_inputs:
            raise UsageError(f"--weights has {len(s.weights)} value(s) for {s.n_inputs} inputs")
        if s.method in ("linear", "slerp") and (any(w < 0 for w in s.weights) or sum(s.weights) <= 0):
            raise UsageError(f"{s.method} needs non-negative --weights with a positive sum")
    if s.majority_sign_method not in ("total", "frequency"):
        raise UsageError("majority sign method must be total or frequency")


@dataclass
class MergeResult:
    """The merged backbone tensors and what happened (SLERP fallbacks, library, version)."""

    state: dict[str, torch.Tensor]
    settings: MergeSettings
    slerp_tensors: int = 0
    slerp_linear_fallbacks: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        from importlib import metadata

        out = {**self.settings.to_json(),
               "library": "peft" if self.settings.method not in ("slerp", "linear") else "hackforge_edge",
               "library_function": (f"peft.utils.merge_utils.{self.settings.method}"
                                    if self.settings.method not in ("slerp", "linear") else
                                    f"hackforge_edge.merging.methods.{self.settings.method}"),
               "peft_version": metadata.version("peft"), **self.details}
        if self.settings.method == "slerp":
            out["slerp"] = {"tensors": self.slerp_tensors, "linear_fallbacks": self.slerp_linear_fallbacks,
                            "parallel_cos_threshold": SLERP_PARALLEL_COS}
        return out


def merge(tv: TaskVectors, settings: MergeSettings) -> MergeResult:
    """Merge the task vectors ``tv`` with ``settings``; returns the merged backbone state."""
    import torch

    w = settings.resolved_weights()
    if settings.method == "slerp":
        return _slerp_all(tv, settings, w[1] / (w[0] + w[1]))
    if settings.method == "linear":
        norm = torch.tensor([x / sum(w) for x in w], dtype=torch.float64)
        deltas = {k: _peft("task_arithmetic", v, norm, settings) for k, v in tv.vectors.items()}
        return MergeResult(apply_delta(tv, deltas), settings)
    weights = torch.tensor(w, dtype=torch.float64)
    deltas = {}
    for i, (k, v) in enumerate(tv.vectors.items()):
        if settings.method.startswith("dare"):
            torch.manual_seed(int(settings.seed) + i)  # PEFT draws DARE's masks from the global RNG
        deltas[k] = _peft(settings.method, v, weights, settings)
    return MergeResult(apply_delta(tv, deltas, settings.lam), settings)


def _peft(method: str, tensors: list[torch.Tensor], weights: torch.Tensor, s: MergeSettings):
    from peft.utils import merge_utils as mu

    with warnings.catch_warnings():
        # density 1 is a legitimate "no pruning"; PEFT warns about it on every tensor
        warnings.filterwarnings("ignore", message="The density .* no pruning")
        if method == "task_arithmetic":
            return mu.task_arithmetic(tensors, weights)
        if method == "magnitude_prune":
            return mu.magnitude_prune(tensors, weights, s.density)
        if method == "dare_linear":
            return mu.dare_linear(tensors, weights, s.density)
        if method == "ties":
            return mu.ties(tensors, weights, s.density, s.majority_sign_method)
        if method == "dare_ties":
            return mu.dare_ties(tensors, weights, s.density, s.majority_sign_method)
    raise UsageError(f"unknown merge method {method!r}")


def slerp(t: float, a: torch.Tensor, b: torch.Tensor,
          threshold: float = SLERP_PARALLEL_COS) -> tuple[torch.Tensor, bool]:
    """Spherical interpolation of two tensors as flat vectors -> (result, fell_back).

    (1-t) a + t b when |cos(a, b)| > ``threshold`` or either is zero (the angle is not
    defined, or too small for sin() to divide by safely); otherwise
    sin((1-t) w)/sin(w) a + sin(t w)/sin(w) b with w the angle between a and b.
    """
    import torch

    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    na, nb = a64.norm(), b64.norm()
    if na == 0 or nb == 0:
        return (1 - t) * a64 + t * b64, True
    cos = torch.clamp((a64.flatten() @ b64.flatten()) / (na * nb), -1.0, 1.0)
    if abs(float(cos)) > threshold:
        return (1 - t) * a64 + t * b64, True
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a64 + (torch.sin(t * omega) / so) * b64, False


def _slerp_all(tv: TaskVectors, settings: MergeSettings, t: float) -> MergeResult:
    deltas, fallbacks = {}, 0
    for k, (ta, tb) in tv.vectors.items():
        base = tv.base[k]
        merged, fell = slerp(t, base + ta, base + tb)
        fallbacks += int(fell)
        deltas[k] = merged - base
    res = MergeResult(apply_delta(tv, deltas), settings, slerp_tensors=len(deltas),
                      slerp_linear_fallbacks=fallbacks)
    res.details["slerp_t"] = t
    return res


def parse_weights(text: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """"0.5,0.5" -> (0.5, 0.5); None stays None. A non-number is a one-line UsageError."""
    if text is None or text == "":
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        return tuple(float(str(x).strip()) for x in items)
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {text!r}") from None
