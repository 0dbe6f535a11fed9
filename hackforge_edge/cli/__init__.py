"""The ``hf-edge`` command line: a thin Typer layer over the library.

One module per command; each command imports its heavy dependencies (torch, onnxruntime)
inside the function body, so ``hf-edge --help`` stays fast. ``main`` turns any
:class:`~hackforge_edge.errors.HFEdgeError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer

from hackforge_edge.errors import HFEdgeError

app = typer.Typer(
    name="hf-edge",
    help="Transfer-learn a model, export it to ONNX, and judge whether it fits edge hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register() -> None:
    # Each module only defines a function and its Typer options; importing them is cheap.
    from hackforge_edge.cli import (
        benchmark_cmd,
        calibrate_cmd,
        compare_cmd,
        export_triton_cmd,
        gate_cmd,
        merge_cmd,
        profile_cmd,
        profiles_cmd,
        report_cmd,
        schema_cmd,
        serve_cmd,
        sweep_cmd,
        train_cmd,
    )

    app.command("train-and-export")(train_cmd.train_and_export)
    app.command("profile")(profile_cmd.profile)
    app.command("benchmark")(benchmark_cmd.benchmark)
    app.command("calibrate")(calibrate_cmd.calibrate)
    app.command("report")(report_cmd.report)
    app.command("compare")(compare_cmd.compare)
    app.command("serve")(serve_cmd.serve)
    app.command("export-triton")(export_triton_cmd.export_triton)
    app.command("schema")(schema_cmd.schema)
    app.command("merge")(merge_cmd.merge)
    app.command("sweep")(sweep_cmd.sweep)
    app.command("gate")(gate_cmd.gate)
    app.add_typer(profiles_cmd.app, name="profiles")


_register()


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print a one-line error and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="hf-edge", standalone_mode=True)
    except HFEdgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("error: interrupted (nothing was marked complete)", err=True)
        return 130
    except SystemExit as exc:  # Typer/Click exit paths
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
