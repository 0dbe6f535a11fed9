"""``hf-edge gate``: will transfer from these starts help or hurt on the target? (forward passes only)"""

from __future__ import annotations

from typing import List, Optional

import typer

from hackforge_edge.training.defaults import DEFAULTS


def gate(
    source: Optional[str] = typer.Option("synthetic-source", help="Source data for shift statistics: "
                                         "an ImageFolder root, synthetic-source, or 'none' to skip."),
    target: str = typer.Option("synthetic-target", help="Target data (its labelled training split is "
                               "scored): an ImageFolder root or synthetic-target."),
    model: str = typer.Option(DEFAULTS.model, help="Model from the registry (tinycnn for tests)."),
    weights: List[str] = typer.Option(["source"], "--weights", "-w",
                                      help="Candidate start (repeatable or comma-separated): none | "
                                           "source | imagenet | PATH to a state_dict. The scratch "
                                           "reference (none) is always scored."),
    image_size: int = typer.Option(DEFAULTS.image_size, help="Square size (px) both domains are resized to."),
    seed: int = typer.Option(0, help="Seed for data, random init, CV folds, permutations."),
    device: str = typer.Option("cpu", help="auto | cpu | cuda (forward passes only)."),
    train_images: Optional[int] = typer.Option(None, help="Target training images for synthetic data "
                                               "(default 160)."),
    out: Optional[str] = typer.Option(None, help="Directory for gate.json (default runs/gate-<time>)."),
    task: str = typer.Option("image", help="image | tabular (shift statistics on a table's raw "
                             "features: --data, --source-data, --target-column)."),
    data: Optional[str] = typer.Option(None, help="Tabular: the target CSV or sklearn:breast_cancer "
                                       "(default), sklearn:diabetes, sklearn:wine."),
    source_data: Optional[str] = typer.Option(None, help="Tabular: the source population's CSV."),
    target_column: Optional[str] = typer.Option(None, help="Tabular: the label/value column."),
    problem: Optional[str] = typer.Option(None, help="Tabular: classification | regression."),
) -> None:
    """Rank candidate starts and predict, for each, whether transfer helps, is uncertain or hurts
    against training from scratch; writes gate.json and prints a table."""
    import time

    from hackforge_edge.cli._console import make_console
    from hackforge_edge.recipes.gate import GateConfig, run_gate

    if task == "tabular":
        _tabular(data, source_data, target_column, problem, seed,
                 out or f"runs/gate-tabular-{time.strftime('%Y%m%d-%H%M%S')}")
        return
    if task != "image":
        from hackforge_edge.errors import UsageError

        raise UsageError(f"--task must be image or tabular, got {task!r}")
    starts = tuple(w.strip() for item in weights for w in item.split(",") if w.strip())
    cfg = GateConfig(target=target, source=None if source in (None, "none") else source, model=model,
                     weights=starts, image_size=image_size, seed=seed, device=device,
                     synthetic_train=train_images,
                     out=out or f"runs/gate-{time.strftime('%Y%m%d-%H%M%S')}")
    console = make_console(highlight=False)
    report, path = run_gate(cfg, say=console.print)
    console.print(gate_table(report))
    console.print(f"rule: {report.decision_rule}")
    console.print(f"recommended start: {report.recommended}   gate.json: {path}")


def _tabular(data, source_data, target_column, problem, seed, out) -> None:
    from rich.table import Table

    from hackforge_edge.cli._console import make_console
    from hackforge_edge.gate.tabular import run_tabular_gate

    report, path = run_tabular_gate(data or "sklearn:breast_cancer", source_data=source_data,
                                    target_column=target_column, problem=problem, seed=seed, out=out)
    table = Table(title=f"Shift between source and target ({report.dataset}, {report.n_source} source "
                        f"/ {report.n_target} target rows, {report.n_features} features)")
    for col in ("statistic", "value", "evidence"):
        table.add_column(col)
    table.add_row("MMD^2 (RBF, median bandwidth)", f"{report.mmd['mmd2']:.4f}",
                  f"permutation p = {report.mmd['p_value']:.3g}")
    table.add_row("proxy A-distance", f"{report.pad['pad']:.3f}",
                  f"domain classifier error {report.pad['domain_error']:.3f}")
    table.add_row("KS, features shifted (BH)", f"{report.ks['n_shifted']} of {report.ks['n_features']}",
                  ", ".join(f"{f['feature']} ({f['ks_statistic']:.2f})" for f in report.shifted_features[:5]))
    console = make_console(highlight=False)
    console.print(table)
    console.print(report.note)
    console.print(f"{report.FILENAME}: {path}")


def gate_table(report):
    """Rich table of a GateReport, best start first."""
    from rich.table import Table

    def f(x, fmt="{:.3f}"):
        return "-" if x is None else fmt.format(x)

    t = Table(title=f"transfer gate: {report.model} at {report.image_size_px} px "
                    f"(target {report.target.get('n_images')} labelled images)")
    for col in ("rank", "start", "verdict", "kNN acc", "diff vs scratch [CI]", "linear acc",
                "LogME", "LEEP", "H-score", "H shrunk", "MMD2 (p)", "PAD"):
        t.add_column(col, justify="left" if col in ("start", "verdict") else "right")
    for s in report.starts:
        d = s.difference_vs_scratch
        diff = "reference" if d is None else f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        mmd, pad = s.shift.get("mmd"), s.shift.get("pad")
        t.add_row(str(s.rank), s.name, s.verdict, f(s.knn_accuracy), diff, f(s.linear_probe_accuracy),
                  f(s.logme), f(s.leep), f(s.h_score), f(s.h_score_shrunk),
                  "-" if not mmd else f"{mmd['mmd2']:.3f} ({mmd['p_value']:.3f})",
                  "-" if not pad else f"{pad['pad']:.2f}")
    return t
