"""What an energy window returns: a frozen :class:`Measurement` (joules per domain, total,
method, kind, error band), with per-item and idle-subtracted views."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from hackforge_edge.errors import MeterError

J_PER_KWH = 3.6e6

Band = tuple[float, float]


@dataclass(frozen=True)
class Measurement:
    """One closed window.

    ``energy_j`` maps each domain that was read successfully to its joules over the window.
    ``energy_j_total`` is the window's energy in J: the sum over domains, except that sub-rails
    of a whole-module rail (Jetson VDD_IN) are not added again. It is ``None`` when no domain
    could be read (never a silent 0). ``band`` is the (low, high) relative error, e.g.
    (-0.6, 1.9) means the true value lies within [0.4x, 2.9x]; ``None`` means not quantified.
    ``kind`` is "measured", "estimated", "mixed" (both kinds of domain) or "cache-hit".
    ``details`` holds the inputs (TDP and its origin, sample counts, per-domain method/kind)
    and ``details["anomalies"]`` anything that went wrong inside the window.
    """

    name: str
    duration_s: float
    energy_j: Mapping[str, float]
    energy_j_total: float | None
    avg_power_w: float | None
    method: str
    kind: str
    band: Band | None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy_j_total is None else self.energy_j_total / J_PER_KWH

    @property
    def anomalies(self) -> list[str]:
        return list(self.details.get("anomalies", []))

    def energy_by_class_j(self) -> dict[str, float]:
        """Joules per hardware class ("cpu", "gpu", "ram", "module") from the read domains."""
        out: dict[str, float] = {}
        domains = self.details.get("domains", {})
        for dom, joules in self.energy_j.items():
            info = domains.get(dom, {})
            if info.get("in_total", True):
                cls = info.get("class", "other")
                out[cls] = out.get(cls, 0.0) + joules
        return out

    def minus_idle(self, idle_w: float, *, origin: str = "caller") -> "Measurement":
        """This window with ``idle_w x duration_s`` removed from the total (per-domain values are
        left raw). A result below zero is clamped at 0 and recorded as an anomaly."""
        if not math.isfinite(idle_w) or idle_w < 0:
            raise MeterError(f"idle power must be a finite number >= 0 W, got {idle_w}")
        if self.energy_j_total is None:
            return self
        idle_j = idle_w * self.duration_s
        net = self.energy_j_total - idle_j
        anomalies = self.anomalies
        if net < 0:
            anomalies.append(f"window energy {self.energy_j_total:.3g} J below idle baseline "
                             f"{idle_j:.3g} J (idle estimate too high or window too short); clamped at 0")
            net = 0.0
        details = {**self.details, "idle_subtracted_w": idle_w, "idle_origin": origin,
                   "idle_subtracted_j": idle_j, "energy_j_total_before_idle": self.energy_j_total,
                   "anomalies": anomalies}
        avg = net / self.duration_s if self.duration_s > 0 else None
        return replace(self, energy_j_total=net, avg_power_w=avg, details=details)

    def per_item(self, n_items: int) -> "Measurement":
        """Energy per item (inference, sample) when ``n_items`` ran inside the window."""
        if n_items <= 0:
            raise MeterError(f"n_items must be > 0, got {n_items}")
        total = None if self.energy_j_total is None else self.energy_j_total / n_items
        details = {**self.details, "items": n_items, "per_item": True}
        return replace(self, name=f"{self.name}/item", duration_s=self.duration_s / n_items,
                       energy_j={k: v / n_items for k, v in self.energy_j.items()},
                       energy_j_total=total, details=details)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "duration_s": self.duration_s, "energy_j": dict(self.energy_j),
                "energy_j_total": self.energy_j_total, "energy_kwh": self.energy_kwh,
                "avg_power_w": self.avg_power_w, "method": self.method, "kind": self.kind,
                "band": list(self.band) if self.band else None, "details": dict(self.details)}


def cache_hit(name: str, *, note: str = "") -> Measurement:
    """A zero-duration phase whose work was skipped (e.g. pretrained weights from cache): 0 J
    spent in this run, labelled kind "cache-hit" so nobody mistakes it for a measured zero."""
    return Measurement(name=name, duration_s=0.0, energy_j={}, energy_j_total=0.0, avg_power_w=None,
                       method="cache-hit", kind="cache-hit", band=None,
                       details={"note": note or "work reused from cache; its original energy is not counted"})
