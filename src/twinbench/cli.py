"""The ``twinbench`` command: a thin layer over the library; errors become exit codes here only."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.errors import TwinbenchError

app = typer.Typer(
    help="PyTorch or JAX for this workload, on this machine — and how sure are we?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

WorkloadFiles = Annotated[
    list[str] | None,
    typer.Option("--workload-file", help="Python file defining a WORKLOAD (repeatable)."),
]


@app.command("list")
def list_workloads(workload_file: WorkloadFiles = None) -> None:
    """Every workload with its sizes, parameter count per size and a description."""
    from twinbench.backends import parameter_counts
    from twinbench.registry import resolve

    table = Table("workload", "sizes (parameters)", "description", title="twinbench workloads")
    for workload in resolve(None, workload_file) + (resolve() if workload_file else []):
        counts = parameter_counts(workload)
        sizes = ", ".join(f"{name} ({counts[name]:,})" for name in workload.sizes)
        table.add_row(workload.name, sizes, workload.description)
    console.print(table)


@app.command()
def parity(
    workloads: Annotated[list[str] | None, typer.Argument(help="Workload names (default: all).")] = None,
    size: Annotated[str, typer.Option(help="Size preset: tiny, small or full.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Optimizer steps in the loss-curve check.")] = 20,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    seed: Annotated[int, typer.Option(help="Seed of the canonical init and the data.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")] = False,
    workload_file: WorkloadFiles = None,
) -> None:
    """Prove that the twins agree: outputs, loss, gradients and loss curves (SGD and Adam)."""
    from twinbench.parity import parity as run_parity

    with err_console.status(f"checking parity at size '{size}'…"):
        report = run_parity(workloads, size=size, workload_files=workload_file, dtype=dtype,
                            steps=steps, seed=seed)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=float))
    else:
        _print_parity(report)
    raise typer.Exit(0 if report.passed else 1)


def _print_parity(report: object) -> None:
    from twinbench.parity import ParityReport

    assert isinstance(report, ParityReport)
    table = Table("workload", "size", "check", "max abs", "max rel", "atol / rtol", "result",
                  title="parity: PyTorch twin vs JAX twin")
    for result in report.results:
        if result.error:
            table.add_row(result.workload, result.size, "—", "", "", "", "[red]error[/red]")
        for check in result.checks:
            verdict = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
            table.add_row(result.workload, result.size, escape(check.name), f"{check.max_abs:.2e}",
                          f"{check.max_rel:.2e}", f"{check.atol:.0e} / {check.rtol:.0e}", verdict)
    console.print(table)
    for result in report.results:
        for line in result.failures():
            console.print(f"[red]{result.workload} ({result.size}):[/red] {escape(line)}")
    console.print("[green]all twins agree[/green]" if report.passed else "[red]parity failed[/red]")


@app.command()
def env() -> None:
    """The environment fingerprint a run records: machine, versions, threads."""
    from twinbench.harness.environment import fingerprint

    print(json.dumps(fingerprint(), indent=2))


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except TwinbenchError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
