"""``converge``: time to a quality target on real data, several seeds per mode."""

from __future__ import annotations

from typing import Annotated

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.cli.base import DEFAULT_OUT, app
from twinbench.cli.options import AsJson, Modes, Out, Threads, option, settings_from
from twinbench.cli.suites import run_and_publish


@app.command()
def converge(
    workload: Annotated[
        list[str] | None,
        option("cancer, cancer-logreg, digits, sunspots, macro, text (repeatable; default all)."),
    ] = None,
    mode: Modes = None,
    seeds: Annotated[int, option("Seeds per (workload, mode), each its own process.")] = 5,
    target: Annotated[
        float | None, option("Quality target of the one --workload (default its own).")
    ] = None,
    max_steps: Annotated[int | None, option("Steps after which a seed is 'not converged'.")] = None,
    eval_every: Annotated[
        int | None, option("Steps between evaluations on the validation split.")
    ] = None,
    threads: Threads = None,
    seed: Annotated[int, option("First seed; the run uses seed … seed + seeds - 1.")] = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Time to a trained model: each mode trained to a validation target on real data.

    Several seeds per mode, MLPerf's drop-the-extremes median with a CI, and parity of the twins'
    trajectories checked before any verdict.
    """
    from twinbench.converge import ConvergeSettings, run_converge

    settings = settings_from(ConvergeSettings, locals(), repeatable=("workload", "mode"))
    settings.validate()  # bad input: one line and exit 2 before the spinner starts
    settings.check_environment()
    run_and_publish("the converge suite", run_converge, settings, out=out, as_json=as_json)


def print_datasets(console: Console) -> None:
    """``twinbench list``'s second table: each converge workload's dataset, its split's size
    and the default target (a dataset whose package is missing says what to install)."""
    from twinbench.converge.datasets import DATASETS, require, size_text
    from twinbench.converge.tasks import TASKS
    from twinbench.errors import TwinbenchError

    table = Table(
        "workload", "dataset", "size", "target", "model", title="twinbench converge: real data"
    )
    for task in TASKS.values():
        try:
            require(task.dataset)
            size = size_text(task.dataset)
        except TwinbenchError:
            size = f"not installed: pip install {DATASETS[task.dataset].package}"
        better = "≥" if task.metric.higher_is_better else "≤"
        target = f"{task.metric.name} {better} {task.target:g}"
        table.add_row(task.name, task.dataset, size, target, escape(task.description))
    console.print(table)
