"""Report figures as PNG bytes (matplotlib, Agg canvas; no pyplot global state, no display).

Each function takes feasibility.json content (and profile.json where needed) and returns PNG
bytes, or None when there is nothing to plot. Colours: verdicts green/amber/red; kinds are
written into the axis labels and titles ("projected", "estimated", "measured").
"""

from __future__ import annotations

import io
from typing import Mapping

from hackforge_edge.feasibility.verdict import value_of

VERDICT_COLOURS = {"PASS": "#2e7d32", "MARGINAL": "#f9a825", "FAIL": "#c62828"}
_DPI = 110


def _label(e: Mapping) -> str:
    parts = [str(e.get("profile"))]
    if e.get("mode"):
        parts.append(str(e["mode"]))
    tail = "/".join(p for p in (e.get("engine"), e.get("precision")) if p)
    return f"{' '.join(parts)} ({tail}, b={e.get('batch')})"


def _new_figure(n_rows: int, width: float = 9.0):
    from matplotlib.figure import Figure

    height = max(2.6, 0.42 * n_rows + 1.5)
    fig = Figure(figsize=(width, height), dpi=_DPI)
    return fig, fig.add_subplot(111)


def _png(fig) -> bytes:
    # attach an Agg canvas explicitly: works without choosing a global backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.15)
    return buf.getvalue()


def latency_figure(feasibility: Mapping, profile: Mapping | None = None) -> bytes | None:
    """Projected latency per profile/mode (error bar = projection band) vs the requirement line;
    the local measurement's p50..p99 is drawn as a separate measured row when present."""
    # measured entries are drawn from profile.json's local block (with their p50..p99 spread)
    entries = [e for e in feasibility.get("entries", [])
               if value_of(e.get("latency_ms")) is not None and e.get("kind") != "measured"]
    rows = []
    for e in entries:
        lat = e["latency_ms"]
        v = value_of(lat)
        lo = value_of(lat.get("low")) if isinstance(lat, Mapping) else v
        hi = value_of(lat.get("high")) if isinstance(lat, Mapping) else v
        rows.append((_label(e) + " [projected]", v, v if lo is None else lo, v if hi is None else hi,
                     VERDICT_COLOURS.get(e.get("verdict"), "#555555"), "o"))
    local = (profile or {}).get("local") or {}
    for b in local.get("batches") or []:
        if b.get("status") == "ok" and isinstance(b.get("latency_ms"), Mapping):
            L = b["latency_ms"]
            p50, p99 = value_of(L.get("p50")), value_of(L.get("p99"))
            if p50 is not None:
                rows.append((f"this machine ({local.get('engine', 'ort-cpu')}, b={b.get('batch')}) [measured p50, bar min-p99]",
                             p50, value_of(L.get("min")) or p50, p99 if p99 is not None else p50, "#1565c0", "s"))
    if not rows:
        return None
    fig, ax = _new_figure(len(rows))
    ys = list(range(len(rows)))[::-1]
    for y, (_, v, lo, hi, colour, marker) in zip(ys, rows):
        ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt=marker, color=colour,
                    ecolor=colour, capsize=4, markersize=6, lw=1.5)
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.margins(x=0.08)
    req = feasibility.get("requirements") or {}
    limit = req.get("max_latency_ms")
    if limit:
        ax.axvline(limit, color="#c62828", ls="--", lw=1.2,
                   label=f"requirement: {req.get('percentile', 'p99')} <= {limit:g} ms")
        # below the axes, so it never hides a data point
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    values = [r[2] for r in rows] + [r[3] for r in rows] + ([limit] if limit else [])
    positive = [x for x in values if x and x > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_xscale("log")
    ax.set_xlabel("latency per batch (ms); bars = projection error band / measured min to p99")
    ax.set_title("Latency: projected per target (colour = verdict) vs requirement", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    return _png(fig)


def energy_figure(feasibility: Mapping, profile: Mapping | None = None) -> bytes | None:
    """Energy per inference (J) per profile/mode with its band; kind in the label."""
    rows = []
    for e in feasibility.get("entries", []):
        if e.get("kind") == "measured":
            continue
        en = e.get("energy_per_inference_j") or {}
        v = value_of(en)
        if v is None:
            continue
        lo = value_of(en.get("low")) if en.get("low") is not None else v
        hi = value_of(en.get("high")) if en.get("high") is not None else v
        rows.append((f"{_label(e)} [{en.get('kind') or 'estimated'}]", v, lo, hi,
                     VERDICT_COLOURS.get(e.get("verdict"), "#555555")))
    local = (profile or {}).get("local") or {}
    for b in local.get("batches") or []:
        en = b.get("energy_per_inference_j") or {}
        v = value_of(en)
        if b.get("status") == "ok" and v is not None:
            lo = value_of(en.get("low")) if en.get("low") is not None else v
            hi = value_of(en.get("high")) if en.get("high") is not None else v
            rows.append((f"this machine (b={b.get('batch')}) [{en.get('kind') or 'estimated'}]", v, lo, hi, "#1565c0"))
    if not rows:
        return None
    fig, ax = _new_figure(len(rows))
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, [r[1] for r in rows], color=[r[4] for r in rows], alpha=0.85,
            xerr=[[max(r[1] - r[2], 0) for r in rows], [max(r[3] - r[1], 0) for r in rows]],
            error_kw={"capsize": 3, "lw": 1})
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    pos = [r[2] for r in rows if r[2] and r[2] > 0] + [r[3] for r in rows if r[3] and r[3] > 0]
    if pos and max(pos) / min(pos) > 30:
        ax.set_xscale("log")
    for y, r in zip(ys, rows):
        ax.text(r[3], y, f"  {r[1]:.3g} J", va="center", fontsize=7)
    ax.set_xlabel("energy per inference (J); bar = band")
    ax.set_title("Energy per inference (estimated from power x latency unless labelled measured)", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    return _png(fig)


def memory_figure(feasibility: Mapping, profile: Mapping | None = None) -> bytes | None:
    """Memory required vs capacity (and usable after headroom) per profile/mode."""
    seen: dict[str, tuple] = {}
    headroom = (feasibility.get("requirements") or {}).get("memory_headroom") or 0.0
    for e in feasibility.get("entries", []):
        req, cap = value_of(e.get("memory_required_bytes")), value_of(e.get("memory_capacity_bytes"))
        if req is None or cap is None:
            continue
        label = (f"{e.get('profile')} {e.get('mode') or ''} ({e.get('precision')}, b={e.get('batch')}) "
                 f"[{e.get('kind') or 'projected'}]").replace("  ", " ")
        seen.setdefault(label, (req, cap, VERDICT_COLOURS.get((e.get("checks") or {}).get("memory", {}).get("verdict"), "#555")))
    if not seen:
        return None
    labels = list(seen)
    fig, ax = _new_figure(len(labels) * 1.4)
    ys = list(range(len(labels)))[::-1]
    gib = 2**30
    caps = [seen[k][1] / gib for k in labels]
    reqs = [seen[k][0] / gib for k in labels]
    ax.barh([y + 0.2 for y in ys], caps, height=0.38, color="#b0bec5", label="capacity")
    ax.barh([y - 0.2 for y in ys], reqs, height=0.38, color=[seen[k][2] for k in labels],
            label="required (colour = memory verdict)")
    for y, c in zip(ys, caps):
        ax.plot([c * (1 - headroom)] * 2, [y - 0.45, y + 0.45], color="#37474f", ls=":", lw=1.2)
    for y, r in zip(ys, reqs):
        ax.text(r, y - 0.2, f"  {r * 1024:.0f} MiB" if r < 1 else f"  {r:.2f} GiB", va="center", fontsize=7)
    ax.plot([], [], color="#37474f", ls=":", label=f"usable after {headroom:.0%} headroom")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(left=max(min(reqs) / 4, 1e-4), right=max(caps) * 1.6)
    ax.set_xlabel("GiB (log scale)")
    ax.set_title("Memory fit: required vs capacity per target", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False, ncol=3)
    ax.grid(axis="x", alpha=0.3, which="both")
    return _png(fig)


FIGURES = {
    "latency": latency_figure,
    "energy": energy_figure,
    "memory": memory_figure,
}


def make_figures(feasibility: Mapping, profile: Mapping | None = None) -> dict[str, bytes]:
    """All figures that have data: name -> PNG bytes (written as figures/<name>.png)."""
    out: dict[str, bytes] = {}
    for name, fn in FIGURES.items():
        png = fn(feasibility, profile)
        if png:
            out[name] = png
    return out
