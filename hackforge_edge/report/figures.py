"""Report figures as PNG bytes (matplotlib, Agg canvas; no pyplot global state, no display).

Each function takes the typed feasibility (and profile) and returns PNG bytes, or None when
there is nothing to plot. Colours: verdicts green/amber/red; kinds are written into the axis
labels and titles ("projected", "estimated", "measured").

matplotlib is the ``report`` extra, not a base dependency: :func:`make_figures` says in one
line how to get figures when it is missing, and the report is written without them.
"""

from __future__ import annotations

import io

from hackforge_edge.feasibility.artifact import Entry, Feasibility
from hackforge_edge.profiling.artifact import Profile

VERDICT_COLOURS = {"PASS": "#2e7d32", "MARGINAL": "#f9a825", "FAIL": "#c62828"}
MEASURED_COLOUR = "#1565c0"
_DPI = 110
NO_MATPLOTLIB = ("figures not drawn: matplotlib is not installed "
                 "(pip install 'hackforge-edge[report]')")


def _label(e: Entry) -> str:
    return f"{e.profile} {e.mode} ({e.engine}/{e.precision}, b={e.batch})"


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


def latency_figure(feasibility: Feasibility, profile: Profile) -> bytes | None:
    """Projected latency per profile/mode (error bar = projection band) vs the requirement line;
    the local measurement's p50..p99 is drawn as a separate measured row when present."""
    rows = []
    for e in feasibility.entries:
        # measured entries are drawn from the profile's local block (with their p50..p99 spread)
        if e.kind == "measured" or e.latency_ms is None:
            continue
        lat = e.latency_ms
        rows.append((_label(e) + " [projected]", lat.value, lat.low, lat.high,
                     VERDICT_COLOURS[e.verdict], "o"))
    if profile.local is not None:
        for b in profile.local.ok_batches():
            L = b.latency_ms
            rows.append((f"this machine ({profile.local.engine}, b={b.batch}) [measured p50, bar min-p99]",
                         L.p50, L.min, L.p99, MEASURED_COLOUR, "s"))
    if not rows:
        return None
    fig, ax = _new_figure(len(rows))
    ys = list(range(len(rows)))[::-1]
    for y, (_, v, lo, hi, colour, marker) in zip(ys, rows, strict=True):
        ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt=marker, color=colour,
                    ecolor=colour, capsize=4, markersize=6, lw=1.5)
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.margins(x=0.08)
    limit = feasibility.requirements.max_latency_ms
    if limit:
        ax.axvline(limit, color="#c62828", ls="--", lw=1.2,
                   label=f"requirement: {feasibility.requirements.percentile} <= {limit:g} ms")
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


def energy_figure(feasibility: Feasibility, profile: Profile) -> bytes | None:
    """Energy per inference (J) per profile/mode with its band; kind in the label."""
    rows = []
    for e in feasibility.entries:
        en = e.energy_per_inference_j
        if e.kind == "measured" or en.value is None:
            continue
        rows.append((f"{_label(e)} [{en.kind or 'estimated'}]", en.value,
                     en.value if en.low is None else en.low, en.value if en.high is None else en.high,
                     VERDICT_COLOURS[e.verdict]))
    if profile.local is not None:
        for b in profile.local.ok_batches():
            en = b.energy_per_inference_j
            if en is None or en.value is None:
                continue
            rows.append((f"this machine (b={b.batch}) [{en.kind}]", en.value,
                         en.value if en.low is None else en.low, en.value if en.high is None else en.high,
                         MEASURED_COLOUR))
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
    for y, r in zip(ys, rows, strict=True):
        ax.text(r[3], y, f"  {r[1]:.3g} J", va="center", fontsize=7)
    ax.set_xlabel("energy per inference (J); bar = band")
    ax.set_title("Energy per inference (estimated from power x latency unless labelled measured)", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    return _png(fig)


def memory_figure(feasibility: Feasibility, profile: Profile) -> bytes | None:
    """Memory required vs capacity (and usable after headroom) per profile/mode."""
    seen: dict[str, tuple] = {}
    headroom = feasibility.requirements.memory_headroom
    for e in feasibility.entries:
        req, cap = e.memory_required_bytes, e.memory_capacity_bytes
        if req is None or cap is None:
            continue
        label = f"{e.profile} {e.mode} ({e.precision}, b={e.batch}) [{e.kind}]"
        seen.setdefault(label, (req, cap, VERDICT_COLOURS[e.checks.memory.verdict]))
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
    for y, c in zip(ys, caps, strict=True):
        ax.plot([c * (1 - headroom)] * 2, [y - 0.45, y + 0.45], color="#37474f", ls=":", lw=1.2)
    for y, r in zip(ys, reqs, strict=True):
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


def make_figures(feasibility: Feasibility, profile: Profile) -> tuple[dict[str, bytes], str | None]:
    """All figures that have data (name -> PNG bytes, written as figures/<name>.png), and a note
    when none could be drawn because matplotlib (the ``report`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401  (the optional dependency; figures need it)
    except ImportError:
        return {}, NO_MATPLOTLIB
    out: dict[str, bytes] = {}
    for name, fn in FIGURES.items():
        png = fn(feasibility, profile)
        if png:
            out[name] = png
    return out, None
