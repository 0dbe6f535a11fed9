"""Render a :class:`Report` as Markdown and as one self-contained HTML page (Jinja2; figures
embedded as base64 PNG, CSS inline, no external fetches)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Mapping

from hackforge_edge.report.artifact import Cell, Report, Table
from hackforge_edge.report.cells import KIND_TAG

CAPTIONS = {
    "latency": "Projected latency per target (error bar = projection band, colour = verdict) against the "
               "requirement line; blue squares: measured on this machine (marker p50, bar min to p99).",
    "energy": "Energy per inference per target, with its band; the kind is in each label.",
    "memory": "Memory required (projected) vs device capacity; dotted line: usable after the headroom.",
}


def _md_cell(c: Cell) -> str:
    text = c.text
    if c.verdict:
        text = f"**{text}**"
    tag = KIND_TAG.get(c.kind or "")
    if tag and text not in ("n/a", ""):
        text += f" [{tag}]"
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> list[str]:
    lines = [f"## {t.title}", ""]
    if t.rows:
        lines.append("| " + " | ".join(t.columns) + " |")
        lines.append("|" + "---|" * len(t.columns))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        lines.append("")
    lines += [f"- {n}" for n in t.notes]
    if t.methods:
        lines += ["", "Methods:"] + [f"- {col}: " + " | ".join(ms) for col, ms in t.methods.items()]
    lines.append("")
    return lines


def _md_reasons_and_figures(report: Report) -> list[str]:
    lines = ["## Reasons", ""]
    for r in report.reasons:
        lines.append(f"- **{r.title}: {r.verdict}**")
        lines += [f"  - {x}" for x in r.reasons]
    lines.append("")
    if report.figures or report.figures_note:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in report.figures.items()]
        if report.figures_note:
            lines.append(f"_{report.figures_note}_")
        lines.append("")
    return lines


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if report.generated_at:
        lines += [f"Generated {report.generated_at}" + (f" from `{report.bundle}`" if report.bundle else ""), ""]
    lines += ["Verdicts: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()), ""]
    lines += ["## Legend: kinds of numbers", ""]
    lines += [f"- **[{KIND_TAG[k]}] {k}**: {v}" for k, v in report.legend.items()] + [""]
    lines += ["## Requirements and thresholds", ""]
    req = {k: v for k, v in report.requirements.model_dump().items() if v is not None}
    lines += ["- requirements: " + ", ".join(f"{k}={v}" for k, v in req.items())]
    lines += ["- thresholds: " + ", ".join(f"{k}={v}" for k, v in report.thresholds.model_dump().items())]
    lines += [f"- rule {k}: {v}" for k, v in report.rules.items()] + [""]
    for i, t in enumerate(report.sections):
        lines += _md_table(t)
        if i == 0:
            lines += _md_reasons_and_figures(report)
    return "\n".join(lines).rstrip() + "\n"


def render_html(report: Report, figure_png: Mapping[str, bytes]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True,
    )
    figures = [{"name": name, "path": path, "data": base64.b64encode(figure_png[name]).decode("ascii")}
               for name, path in report.figures.items() if name in figure_png]
    return env.get_template("report.html.j2").render(
        r=report.to_json(), figures=figures, captions=CAPTIONS, kind_tag=KIND_TAG)
