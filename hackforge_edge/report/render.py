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


def _g(x, nd: int = 0, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:,.{nd}f}{unit}"


def _md_answer(report: Report) -> list[str]:
    a = report.answer
    if a is None:
        return []
    lines = ["## Recommendation", "", f"Workload: {a.workload}", ""]
    p = a.recommended
    if p is None:
        return lines + [f"**No recommendation**: {a.none_reason}", ""]
    acc = "not checked" if p.accuracy is None else f"{100 * p.accuracy:.1f} %"
    lines += [f"**{p.display_name or p.profile}, mode {p.mode}, {p.precision.upper()}** ({p.verdict})", "",
              f"- devices needed: {_g(p.devices)} (projected)",
              f"- cost over {_g(a.horizon_years)} years: {_g(p.cost_total, 0, ' ' + a.currency)} "
              f"(purchase {_g(p.purchase, 0, ' ' + a.currency)}, price {p.price_basis or 'n/a'}); "
              f"{_g(p.cost_per_million, 2, ' ' + a.currency)} per million inferences (estimated)",
              f"- energy per year: {_g(p.energy_kwh_per_year, 0, ' kWh')}; CO2 per year: "
              f"{_g(p.co2_kg_per_year, 1, ' kg CO2e')} (estimated)",
              f"- top-1 at {p.precision.upper()} on target data: {acc}; model top-1 (FP32): "
              f"{'n/a' if a.model_accuracy is None else f'{100 * a.model_accuracy:.1f} %'}",
              "- training carbon (once): " + ("n/a" if a.training_co2_kg is None else
                                              f"{a.training_co2_kg:.3g} kg CO2e") + f" ({a.training_kind or 'n/a'})",
              f"- ranked by {a.ranked_by}", ""]
    if a.runners_up:
        lines += ["| Runner-up | Mode | Precision | Verdict | Devices | Cost | Per million | kWh/yr | kg CO2e/yr |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {q.display_name or q.profile} | {q.mode} | {q.precision} | {q.verdict} | {_g(q.devices)} | "
                  f"{_g(q.cost_total)} | {_g(q.cost_per_million, 2)} | {_g(q.energy_kwh_per_year)} | "
                  f"{_g(q.co2_kg_per_year, 1)} |" for q in a.runners_up]
        lines.append("")
    return lines


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if report.generated_at:
        lines += [f"Generated {report.generated_at}" + (f" from `{report.bundle}`" if report.bundle else ""), ""]
    lines += _md_answer(report)
    lines += ["Verdicts: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()), ""]
    for i, t in enumerate(report.sections):
        lines += _md_table(t)
        if i == 0:
            lines += _md_reasons_and_figures(report)
    lines += ["## Appendix: requirements, thresholds and rules", ""]
    req = {k: v for k, v in report.requirements.model_dump().items() if v is not None}
    lines += ["- requirements: " + ", ".join(f"{k}={v}" for k, v in req.items())]
    lines += ["- thresholds: " + ", ".join(f"{k}={v}" for k, v in report.thresholds.model_dump().items())]
    lines += [f"- rule {k}: {v}" for k, v in report.rules.items()] + [""]
    lines += ["## Legend: kinds of numbers (appendix)", ""]
    lines += [f"- **[{KIND_TAG[k]}] {k}**: {v}" for k, v in report.legend.items()] + [""]
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
