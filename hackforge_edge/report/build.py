"""Build the feasibility report of a bundle: report.json, report.md, report.html, figures/*.png.

The report is assembled once as a typed :class:`~hackforge_edge.report.artifact.Report`
(sections of tables whose cells carry their text, kind and method), then rendered twice:
Markdown and a self-contained HTML page. The data flows one way: profile -> feasibility ->
report; nothing here judges or re-reads what the verdict decided.

Kinds (every number carries one): ``measured`` on this machine with the stated method,
``estimated`` from a model of power with its inputs, ``projected`` from a hardware profile
applied to the static analysis with its calibration and error band, ``static`` counted from
the ONNX graph.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from hackforge_edge import bundle
from hackforge_edge.errors import BundleError
from hackforge_edge.feasibility.artifact import Feasibility
from hackforge_edge.profiling.artifact import Profile
from hackforge_edge.report import run_sections, sections
from hackforge_edge.report.answer import build_answer
from hackforge_edge.report.artifact import Report
from hackforge_edge.report.cells import LEGEND
from hackforge_edge.report.inputs import ReportInputs, read_report_inputs
from hackforge_edge.report.render import render_html, render_markdown

REPORT_MD, REPORT_HTML = "report.md", "report.html"
FIGURES_DIR = "figures"


def assemble(inputs: ReportInputs, feasibility: Feasibility, *,
             comparison_rows: Sequence[Mapping[str, Any]] | None = None, figures: Sequence[str] = (),
             figures_note: str | None = None, bundle_dir: str | None = None,
             generated_at: str | None = None) -> Report:
    """The report from its inputs (pure: no I/O)."""
    profile = inputs.profile
    parts = [sections.verdict_table(feasibility), sections.precision_table(feasibility),
             sections.local_table(profile),
             sections.static_table(profile)]
    if inputs.quality is not None:
        parts += run_sections.quality_tables(inputs.quality)
    if inputs.carbon is not None:
        parts.append(run_sections.carbon_table(inputs.carbon))
    if inputs.validation is not None:
        parts += run_sections.validation_tables(inputs.validation)
    if comparison_rows:
        parts.append(run_sections.comparison_table(comparison_rows))
    parts.append(sections.skipped_table(profile))
    if inputs.manifest:
        parts.append(run_sections.manifest_table(inputs.manifest))
    return Report(
        generated_at=generated_at, bundle=bundle_dir,
        title=f"Feasibility report: {Path(profile.model.path).name}"
              + (f" ({inputs.run_name})" if inputs.run_name else ""),
        answer=build_answer(feasibility, inputs), legend=LEGEND, model=profile.model, counts=feasibility.counts, summary=feasibility.summary,
        requirements=feasibility.requirements, thresholds=feasibility.config, rules=feasibility.rules,
        grid=feasibility.grid, reasons=sections.reasons(feasibility),
        figures={name: f"{FIGURES_DIR}/{name}.png" for name in figures}, figures_note=figures_note,
        sections=[s for s in parts if s is not None])


def build_report(bundle_dir: str | os.PathLike, *, profile: Profile | None = None,
                 feasibility: Feasibility | None = None,
                 comparison_rows: Sequence[Mapping[str, Any]] | None = None,
                 out_dir: str | os.PathLike | None = None, inputs: ReportInputs | None = None,
                 say=None) -> dict[str, Path]:
    """Write report.json, report.md, report.html and figures/*.png; return their paths.

    ``profile`` / ``feasibility`` default to the bundle's profile.json / feasibility.json;
    ``out_dir`` defaults to the bundle. Other parts (metrics, training carbon, export
    validation, manifest) are read from the bundle when present, unless ``inputs`` (already
    read) is given. Without matplotlib the report is written without figures and ``say``
    (default: stderr) gets one line naming the extra.
    """
    from hackforge_edge.report.figures import make_figures

    d = Path(bundle_dir)
    out = Path(out_dir) if out_dir is not None else d
    if inputs is None:
        inputs = read_report_inputs(d, profile=profile, feasibility=feasibility)
    elif feasibility is not None:
        inputs = replace(inputs, feasibility=feasibility)
    if inputs.feasibility is None:
        raise BundleError(f"{d}: no {Feasibility.FILENAME} in the bundle; run `hf-edge profile {d}` first")
    pngs, note = make_figures(inputs.feasibility, inputs.profile)
    if note:
        (say or _stderr)(f"note: {note}")
    paths: dict[str, Path] = {}
    for name, png in pngs.items():
        paths[f"figure_{name}"] = bundle.atomic_write_bytes(out / FIGURES_DIR / f"{name}.png", png)
    report = assemble(inputs, inputs.feasibility, comparison_rows=comparison_rows, figures=list(pngs),
                      figures_note=note, bundle_dir=str(d), generated_at=bundle.utc_now())
    paths["json"] = report.write(out)
    paths["md"] = bundle.atomic_write_text(out / REPORT_MD, render_markdown(report))
    paths["html"] = bundle.atomic_write_text(out / REPORT_HTML, render_html(report, pngs))
    return paths


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)
