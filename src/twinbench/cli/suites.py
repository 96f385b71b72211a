"""``optim`` and ``autodiff``, and the one way every suite command shows and stores its result."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.status import Status

from twinbench.cli.base import DEFAULT_OUT, app, console, err_console
from twinbench.cli.options import AsJson, Out, Seed, Threads, int_list, option, settings_from
from twinbench.store import DB_NAME
from twinbench.suite import SuiteInterrupted, SuiteResult, SuiteSettings, record, view_for

ResultT = TypeVar("ResultT", bound=SuiteResult)


def run_and_publish(
    label: str,
    run: Callable[..., ResultT],
    settings: SuiteSettings,
    *,
    out: Path,
    as_json: bool,
) -> ResultT:
    """Run a suite under a spinner that shows its progress lines, then print and store it.

    Ctrl-C or SIGTERM: a suite that keeps what finished (it raises `SuiteInterrupted`) has that
    stored and shown; either way the command says so and exits with 128 + the signal.
    """
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    catch = threading.current_thread() is threading.main_thread()  # only it may take signals
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM) if catch}
    try:
        with err_console.status(f"running {label}…") as status:
            result = run(settings, progress=_progress_shown_by(status))
    except (SuiteInterrupted, KeyboardInterrupt) as stopped:
        signum = signal.Signals(received[0] if received else signal.SIGINT)
        for s, handler in previous.items():  # a second signal now stops the storing itself
            signal.signal(s, handler)
        kept = isinstance(stopped, SuiteInterrupted)
        if isinstance(stopped, SuiteInterrupted):
            publish_suite(out, stopped.partial, as_json=as_json)
        what = "what finished is stored" if kept else "this suite keeps nothing of a partial run"
        err_console.print(
            f"{label} interrupted ({signum.name}): {what}", markup=False, soft_wrap=True
        )
        raise typer.Exit(128 + int(signum)) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    publish_suite(out, result, as_json=as_json)
    return result


def _progress_shown_by(status: Status) -> Callable[[str], None]:
    """The spinner's line on a terminal; written to a file, a pipe or a CI log, where the
    spinner draws nothing, one line per message, so a long suite's log shows where it is."""
    if err_console.is_terminal:
        return lambda message: status.update(escape(message))
    return lambda message: err_console.print(message, markup=False, highlight=False, soft_wrap=True)


def publish_suite(out: Path, result: SuiteResult, *, as_json: bool) -> None:
    """Print a suite's result (its report view's Markdown, or JSON) and store it as a run,
    keeping the rendering with the run so that `twinbench report` shows it as it was."""
    data = result.to_dict()
    view = view_for(result.kind)
    if view is None:  # a suite module that forgot to register: a bug, not a user error
        raise LookupError(f"no report view registered for suite kind '{result.kind}'")
    text = view.markdown(data)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    run_id = record(result, out, text=text)
    console.print(
        f"stored as run {run_id} in {out / DB_NAME}", highlight=False, soft_wrap=True, markup=False
    )


@app.command()
def optim(
    problem: Annotated[list[str] | None, option("linreg, logreg, rosenbrock (repeatable).")] = None,
    method: Annotated[list[str] | None, option("newton, bfgs, lbfgs (repeatable).")] = None,
    dim: Annotated[int | None, option("Problem dimension (default per problem).")] = None,
    gtol: Annotated[float, option("Gradient-norm tolerance (inf-norm).")] = 1e-6,
    max_iter: Annotated[int, option("Iteration cap per solve.")] = 500,
    repeats: Annotated[int, option("Timed repetitions per solve.")] = 5,
    workload: Annotated[
        list[str] | None, option("First-order workloads (default linreg, mlp, xor).")
    ] = None,
    optimizer: Annotated[
        list[str] | None, option("sgd, sgd_momentum, adam, adamw (repeatable).")
    ] = None,
    size: Annotated[str, option("Size preset of the first-order workloads.")] = "tiny",
    steps: Annotated[int, option("First-order steps compared.")] = 200,
    quick: Annotated[bool, typer.Option("--quick", help="Small problems, one timed call.")] = False,
    no_first_order: Annotated[bool, typer.Option("--no-first-order")] = False,
    no_second_order: Annotated[bool, typer.Option("--no-second-order")] = False,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Optimizers compared: SGD/momentum/Adam/AdamW trajectories; Newton, BFGS, L-BFGS solves."""
    from twinbench.optim_suite import OptimSettings, run_optim

    settings = settings_from(
        OptimSettings,
        locals(),
        repeatable=("problem", "method", "workload", "optimizer"),
        first_order=not no_first_order,
        second_order=not no_second_order,
    )
    run_and_publish("the optimizer suite", run_optim, settings, out=out, as_json=as_json)


@app.command()
def autodiff(
    function: Annotated[list[str] | None, option("mlp, rosenbrock (repeatable).")] = None,
    transform: Annotated[
        list[str] | None,
        option(
            "grad, jvp, vjp, jacfwd, jacrev, hessian, hvp, per_example_grad, "
            "checkpoint, per_example_checkpoint (repeatable; default all)."
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes and short budgets.")] = False,
    dim: Annotated[int | None, option("Rosenbrock dimension for timing.")] = None,
    hidden: Annotated[int | None, option("MLP hidden width for timing.")] = None,
    batch: Annotated[int | None, option("MLP batch for timing.")] = None,
    batch_sizes: Annotated[
        str, option("Per-example-gradient batch sizes, e.g. 1,4,16,64,256.")
    ] = "",
    mode: Annotated[list[str] | None, option("eager and/or compiled.")] = None,
    threads: Threads = None,
    budget: Annotated[float | None, option("Seconds of timing per measurement.")] = None,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Skip the memory step.")] = False,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Autodiff compared: each transformation checked, timed eager and compiled, memory measured."""
    from twinbench.autodiff import AutodiffSettings, run_autodiff

    sizes = int_list("--batch-sizes", batch_sizes) or None  # a bad list fails before anything
    settings = settings_from(
        AutodiffSettings,
        locals(),
        repeatable=("function", "transform", "mode"),
        batch_sizes=sizes,
        budget_s=budget,
        memory=not no_memory,
    )
    run_and_publish("the autodiff suite", run_autodiff, settings, out=out, as_json=as_json)
