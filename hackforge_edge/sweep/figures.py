"""Sweep figures as PNG bytes (matplotlib, explicit Agg canvas, no pyplot state).

accuracy vs data fraction: one panel per model, one line per arm, error bars = the 95 %
t-interval over seeds. accuracy vs training energy: one point per (model, arm, fraction) at
its means, both intervals as error bars, the Pareto front (no other point has both less
energy and higher accuracy) drawn as a step line through its points.
"""

from __future__ import annotations

from typing import Any, Sequence

from hackforge_edge.report.figures import _png
from hackforge_edge.sweep.stats import pareto_front

_DPI = 110


def _err(s: dict[str, Any]) -> tuple[float, float]:
    if s.get("lo") is None or s.get("mean") is None:
        return 0.0, 0.0
    return s["mean"] - s["lo"], s["hi"] - s["mean"]


def accuracy_vs_fraction(groups: Sequence[dict[str, Any]], models: Sequence[str]) -> bytes | None:
    """``groups``: summary groups (model, arm, fraction, accuracy{mean, lo, hi})."""
    from matplotlib.figure import Figure

    models = [m for m in models if any(g["model"] == m and g["accuracy"]["mean"] is not None
                                       for g in groups)]
    if not models:
        return None
    fig = Figure(figsize=(4.6 * len(models), 3.8), dpi=_DPI)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        arms = list(dict.fromkeys(g["arm"] for g in groups if g["model"] == model))
        for k, arm in enumerate(arms):
            pts = sorted((g for g in groups if g["model"] == model and g["arm"] == arm
                          and g["accuracy"]["mean"] is not None), key=lambda g: g["fraction"])
            if not pts:
                continue
            xs = [g["fraction"] for g in pts]
            ys = [g["accuracy"]["mean"] for g in pts]
            errs = list(zip(*[_err(g["accuracy"]) for g in pts]))
            ax.errorbar([x * (1 + 0.015 * (k - len(arms) / 2)) for x in xs], ys, yerr=errs,
                        marker="o", capsize=3, label=arm)
        ax.set_xscale("log")
        ax.minorticks_off()  # only the swept fractions are labelled
        ax.set_xticks(sorted({g["fraction"] for g in groups}))
        ax.set_xticklabels([f"{f:g}" for f in sorted({g["fraction"] for g in groups})])
        ax.set_xlabel("share of the target training set (log scale)")
        ax.set_ylabel("test accuracy (measured)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Accuracy vs data fraction: mean over seeds, 95% t-interval")
    fig.tight_layout()
    return _png(fig)


def accuracy_vs_energy(groups: Sequence[dict[str, Any]], energy_kind: str) -> bytes | None:
    """Means with intervals, and the Pareto front over (energy, accuracy) marked."""
    from matplotlib.figure import Figure

    pts = [g for g in groups if g["accuracy"]["mean"] is not None
           and g["energy_consumed"]["mean"] is not None]
    if not pts:
        return None
    fig = Figure(figsize=(8.5, 5.2), dpi=_DPI)
    ax = fig.add_subplot(111)
    labels = list(dict.fromkeys(f"{g['model']} {g['arm']}" for g in pts))
    markers = "osD^v<>ph*"
    for k, label in enumerate(labels):
        sel = [g for g in pts if f"{g['model']} {g['arm']}" == label]
        ax.errorbar([g["energy_consumed"]["mean"] * 3.6e6 for g in sel],
                    [g["accuracy"]["mean"] for g in sel],
                    xerr=list(zip(*[tuple(e * 3.6e6 for e in _err(g["energy_consumed"])) for g in sel])),
                    yerr=list(zip(*[_err(g["accuracy"]) for g in sel])),
                    fmt=markers[k % len(markers)], capsize=2, alpha=0.8, label=label)
        for g in sel:
            ax.annotate(f"{g['fraction']:g}", (g["energy_consumed"]["mean"] * 3.6e6, g["accuracy"]["mean"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front([(g["energy_consumed"]["mean"], g["accuracy"]["mean"]) for g in pts])
    fx = [pts[i]["energy_consumed"]["mean"] * 3.6e6 for i in front]
    fy = [pts[i]["accuracy"]["mean"] for i in front]
    ax.step(fx, fy, where="post", color="black", linewidth=1.5, zorder=5, label="Pareto front")
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="black", linewidths=1.5, zorder=6)
    ax.set_xscale("log")
    ax.set_xlabel(f"training energy per run, J ({energy_kind}; log scale)")
    ax.set_ylabel("test accuracy (measured)")
    ax.set_title("Accuracy vs training energy (labels: data fraction); circled = Pareto front")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _png(fig)
