"""The feasibility report: report.json + report.md + self-contained report.html + figures/*.png.

Public API (imports Jinja2 and matplotlib only when called; without matplotlib, the ``report``
extra, the report is written without figures and says so)::

    build_report(bundle_dir, *, profile=None, feasibility=None, comparison_rows=None,
                 out_dir=None) -> dict[str, Path]     # keys json, md, html, figure_<name>
    profile_and_report(bundle_dir, profiles, requirements, *, meter=None,
                       batch_sizes=(1, 4, 8), ...) -> ProfileResult   # profile -> verdict -> report

Modules: ``artifact`` (the typed report.json), ``inputs`` (what is read from a bundle),
``sections`` / ``run_sections`` (the tables), ``render`` (Markdown, HTML), ``figures``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "profile_and_report"]


def build_report(bundle_dir, **kwargs: Any):
    from hackforge_edge.report.build import build_report as _f
    return _f(bundle_dir, **kwargs)


def profile_and_report(bundle_dir, profiles, requirements=None, **kwargs: Any):
    from hackforge_edge.recipes.profile import profile_and_report as _f
    return _f(bundle_dir, profiles, requirements, **kwargs)
