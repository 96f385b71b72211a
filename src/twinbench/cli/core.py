"""``list``, ``parity`` and ``env``: what the workloads are and whether their twins agree."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from twinbench.cli.base import app, console, err_console
from twinbench.cli.options import AsJson, Dtype, Seed, WorkloadFiles, option


@app.command("list")
def list_workloads(workload_file: WorkloadFiles = None) -> None:
    """Every workload with its sizes, parameter count per size and a description."""
    from twinbench.backends import parameter_counts
    from twinbench.registry import resolve
    from twinbench.report.terminal import print_workloads

    workloads = resolve(None, workload_file) + (resolve() if workload_file else [])
    print_workloads([(w, parameter_counts(w)) for w in workloads], console)
    from twinbench.cli.converge import print_datasets

    print_datasets(console)  # the converge suite's real datasets, their sizes and targets


@app.command()
def parity(
    workloads: Annotated[
        list[str] | None, typer.Argument(help="Workload names (default: all).")
    ] = None,
    size: Annotated[str, option("Size preset: tiny, small or full.")] = "tiny",
    steps: Annotated[int, option("Optimizer steps in the loss-curve check.")] = 20,
    dtype: Dtype = "float32",
    seed: Seed = 0,
    timeout: Annotated[
        float, option("Seconds one workload's check may take (its own process).")
    ] = 900.0,
    as_json: AsJson = False,
    workload_file: WorkloadFiles = None,
) -> None:
    """Prove that the twins agree: outputs, loss, gradients and loss curves (SGD and Adam).

    Each workload is checked in its own process: a twin that exits, crashes, hangs or raises
    fails its workload's check, and the others are still checked.
    """
    from rich.markup import escape

    from twinbench.parity import parity
    from twinbench.report.terminal import print_parity

    with err_console.status(f"checking parity at size '{escape(size)}'…"):
        report = parity(
            workloads,
            isolated=True,
            size=size,
            workload_files=workload_file,
            dtype=dtype,
            steps=steps,
            seed=seed,
            timeout=timeout,
        )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=float))
    else:
        print_parity(report, console)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def env() -> None:
    """The environment fingerprint a run records: machine, versions, threads."""
    from twinbench.harness.environment import fingerprint

    print(json.dumps(fingerprint(), indent=2))
