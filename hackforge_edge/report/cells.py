"""Numbers as text, and the cells and tables of the report, each number with its kind."""

from __future__ import annotations

from typing import Iterable, Sequence

from hackforge_edge.feasibility.checks import fmt_bytes  # noqa: F401  (one definition; report modules import it from here)
from hackforge_edge.report.artifact import Cell, Kind, Table

LEGEND: dict[Kind, str] = {
    "measured": "obtained on this machine, with the method named (e.g. onnxruntime wall clock, "
                "NVML energy counter, test-set evaluation)",
    "estimated": "from a model of power (e.g. TDP x utilisation, power x latency) with its inputs; "
                 "not a meter reading",
    "projected": "a hardware profile applied to the static analysis, with its calibration and "
                 "error band; not run on that hardware",
    "static": "counted from the exported ONNX graph (MACs, parameters, bytes)",
}
KIND_TAG = {"measured": "M", "estimated": "E", "projected": "P", "static": "S"}


def fmt(v: float | None, unit: str = "", nd: int = 3) -> str:
    """Number with ``nd`` significant digits (>= 1000 in full with digit grouping)."""
    if v is None:
        return "n/a"
    if v == 0:
        s = "0"
    elif abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) < 1e-3:
        s = f"{v:.{nd - 1}e}"
    else:
        s = f"{v:.{nd}g}"
    return f"{s} {unit}".rstrip()




def as_kind(kind: str | None) -> Kind | None:
    """A kind the legend knows; anything else ("mixed", "cache-hit", None) is shown untagged."""
    return kind if kind in LEGEND else None  # type: ignore[return-value]


def cell(text: str, kind: str | None = None, method: str | None = None) -> Cell:
    """A cell; a number's kind is dropped when its text is n/a (nothing to label)."""
    return Cell(text=text, kind=as_kind(kind) if text not in ("n/a", "") else None, method=method)


def value_cell(v: float | int | str | bool | None, kind: str | None, method: str | None = None,
               unit: str = "") -> Cell:
    """A value of a JSON file: numbers formatted and labelled, others as text without a kind."""
    if v is None:
        return Cell(text="n/a")
    if isinstance(v, bool):
        return Cell(text=str(v).lower())
    if isinstance(v, (int, float)):
        return cell(fmt(v, unit, nd=4), kind, method)
    return Cell(text=str(v))


def table(title: str, columns: Sequence[str], rows: list[list[Cell]], notes: Iterable[str] = ()) -> Table:
    """A titled table; ``methods`` collects, per column, the distinct methods of its cells."""
    methods: dict[str, list[str]] = {}
    for row in rows:
        for col, c in zip(columns, row, strict=True):
            if c.method:
                seen = methods.setdefault(col, [])
                if c.method not in seen:
                    seen.append(c.method)
    if len(methods) > 1 and len({tuple(m) for m in methods.values()}) == 1:
        methods = {"all columns": next(iter(methods.values()))}
    return Table(title=title, columns=list(columns), rows=rows, notes=[n for n in notes if n],
                 methods=methods)
