"""``list``, ``parity`` and ``env``: what the workloads are and whether their twins agree."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from twinbench.cli.app import app, console, err_console
from twinbench.cli.options import AsJson, WorkloadFiles


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
    workloads: Annotated[
        list[str] | None, typer.Argument(help="Workload names (default: all).")
    ] = None,
    size: Annotated[str, typer.Option(help="Size preset: tiny, small or full.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Optimizer steps in the loss-curve check.")] = 20,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    seed: Annotated[int, typer.Option(help="Seed of the canonical init and the data.")] = 0,
    as_json: AsJson = False,
    workload_file: WorkloadFiles = None,
) -> None:
    """Prove that the twins agree: outputs, loss, gradients and loss curves (SGD and Adam)."""
    from twinbench.parity import parity as run_parity

    with err_console.status(f"checking parity at size '{size}'…"):
        report = run_parity(
            workloads, size=size, workload_files=workload_file, dtype=dtype, steps=steps, seed=seed
        )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=float))
    else:
        _print_parity(report)
    raise typer.Exit(0 if report.passed else 1)


def _print_parity(report: object) -> None:
    from twinbench.parity import ParityReport

    assert isinstance(report, ParityReport)
    table = Table(
        "workload",
        "size",
        "check",
        "max abs",
        "max rel",
        "atol / rtol",
        "result",
        title="parity: PyTorch twin vs JAX twin",
    )
    for result in report.results:
        if result.error:
            table.add_row(result.workload, result.size, "—", "", "", "", "[red]error[/red]")
        for check in result.checks:
            verdict = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
            table.add_row(
                result.workload,
                result.size,
                escape(check.name),
                f"{check.max_abs:.2e}",
                f"{check.max_rel:.2e}",
                f"{check.atol:.0e} / {check.rtol:.0e}",
                verdict,
            )
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
