"""The ``twinbench`` command: a thin layer over the library; errors become exit codes here only."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.cli_progress import RunProgress
from twinbench.errors import TwinbenchError

if TYPE_CHECKING:
    from twinbench.report.summary import RunSummary

app = typer.Typer(
    help="PyTorch or JAX for this workload, on this machine — and how sure are we?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
DEFAULT_OUT = Path("twinbench-results")
err_console = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]
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


Modes = Annotated[
    list[str] | None,
    typer.Option("--mode", help="torch-eager, torch-compile, jax-jit, jax-eager (repeatable)."),
]
Phases = Annotated[
    list[str] | None, typer.Option("--phase", help="train and/or infer (default train).")
]
Dtype = Annotated[str, typer.Option(help="float32 or bfloat16.")]
Device = Annotated[str, typer.Option(help="cpu or cuda.")]
Threads = Annotated[
    int | None, typer.Option(help="Threads for both frameworks (default: all usable cores).")
]
Budget = Annotated[float, typer.Option(help="Seconds of steady-state timing per cell.")]
Timeout = Annotated[float, typer.Option(help="Seconds a cell may take to set up and compile.")]
Out = Annotated[Path, typer.Option(help="Directory of the results database and reports.")]
AllowTf32 = Annotated[
    bool, typer.Option("--allow-tf32", help="Allow TF32 matmuls, on both sides alike.")
]
CompileMode = Annotated[str, typer.Option(help="default, reduce-overhead or max-autotune.")]
EXECUTORS = ("local", "ray")
Seed = Annotated[int, typer.Option(help="Seed of the canonical init and the data.")]


@app.command()
def run(
    suite: Annotated[
        str,
        typer.Option(
            help="default (every workload at small), tiny (the seeds' examples at tiny), zoo "
            "(resnet, bert, gpt, lstm, gru at small), zoo-tiny, or examples (at small)."
        ),
    ] = "default",
    workload: Annotated[
        list[str] | None, typer.Option(help="Only these workloads (repeatable).")
    ] = None,
    mode: Modes = None,
    phase: Phases = None,
    size: Annotated[
        list[str] | None, typer.Option(help="Size presets (overrides --suite).")
    ] = None,
    dtype: Dtype = "float32",
    device: Device = "cpu",
    threads: Threads = None,
    budget: Budget = 5.0,
    timeout: Timeout = 900.0,
    out: Out = DEFAULT_OUT,
    allow_tf32: AllowTf32 = False,
    torch_compile_mode: CompileMode = "default",
    seed: Seed = 0,
    workload_file: WorkloadFiles = None,
    tensorboard: TensorBoardDir = None,
    executor: Annotated[
        str,
        typer.Option(
            help="local (this machine) or ray: each (workload, size) group becomes a Ray task "
            "(one GPU with --device cuda), parity first and every cell in its own subprocess as "
            "here; a node times one group at a time, since timing two at once on shared cores "
            'would corrupt both. Needs pip install "twinbench\\[ray]".'
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --executor ray: HOST:PORT of a running cluster's head (default: start a "
            "local Ray instance on the loopback interface)."
        ),
    ] = None,
) -> None:
    """Time every workload in four modes, fairly, and say which framework is faster."""
    from twinbench.harness.runner import SUITES

    if suite not in SUITES:
        raise TwinbenchError(f"unknown suite '{suite}'; valid: {', '.join(SUITES)}")
    if executor not in EXECUTORS:
        raise TwinbenchError(f"unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    if ray_address is not None and executor != "ray":
        raise TwinbenchError("--ray-address needs --executor ray")
    suite_workloads, suite_size = SUITES[suite]
    _execute(
        out,
        workloads=tuple(workload or (() if workload_file else suite_workloads)),
        workload_files=tuple(workload_file or ()),
        sizes=tuple(size or (suite_size,)),
        modes=mode,
        phases=phase,
        dtype=dtype,
        device=device,
        threads=threads,
        budget=budget,
        timeout=timeout,
        allow_tf32=allow_tf32,
        torch_compile_mode=torch_compile_mode,
        seed=seed,
        tensorboard=tensorboard,
        executor=executor,
        ray_address=ray_address,
    )


@app.command()
def sweep(
    workloads: Annotated[list[str], typer.Argument(help="Workloads to sweep.")],
    batch_sizes: Annotated[
        str, typer.Option(help="Comma-separated batch sizes, e.g. 1,2,4,8,16.")
    ] = "",
    seq_lens: Annotated[
        str, typer.Option(help="Comma-separated sequence lengths (sequence workloads).")
    ] = "",
    size: Annotated[str, typer.Option(help="The size preset the sweep starts from.")] = "small",
    mode: Modes = None,
    phase: Phases = None,
    dtype: Dtype = "float32",
    device: Device = "cpu",
    threads: Threads = None,
    budget: Budget = 3.0,
    timeout: Timeout = 900.0,
    out: Out = DEFAULT_OUT,
    seed: Seed = 0,
    workload_file: WorkloadFiles = None,
    tensorboard: TensorBoardDir = None,
) -> None:
    """Step time, throughput and memory as the batch (or sequence) grows, per mode."""
    sweep_batch, sweep_seq = (
        _int_list("--batch-sizes", batch_sizes),
        _int_list("--seq-lens", seq_lens),
    )
    if not sweep_batch and not sweep_seq:
        raise TwinbenchError("give --batch-sizes and/or --seq-lens, e.g. --batch-sizes 1,2,4,8")
    _execute(
        out,
        workloads=tuple(workloads),
        workload_files=tuple(workload_file or ()),
        sizes=(size,),
        modes=mode,
        phases=phase,
        dtype=dtype,
        device=device,
        threads=threads,
        budget=budget,
        timeout=timeout,
        seed=seed,
        batch_sizes=sweep_batch,
        seq_lens=sweep_seq,
        tensorboard=tensorboard,
    )


def _int_list(flag: str, text: str) -> tuple[int, ...]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise TwinbenchError(
            f"{flag} '{text}' is invalid; give comma-separated integers > 0, e.g. 1,2,4"
        ) from None


def _execute(
    out: Path,
    *,
    modes: list[str] | None,
    phases: list[str] | None,
    threads: int | None,
    tensorboard: Path | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    **fields: Any,
) -> None:
    """Run the measurement, show progress, then the report; Ctrl-C keeps what finished."""
    from functools import partial

    from twinbench.harness.environment import usable_cores
    from twinbench.harness.runner import MODES, RunInterrupted, RunSettings
    from twinbench.harness.runner import run as run_suite

    if executor == "ray":
        from twinbench.harness import ray_executor

        run_suite = partial(ray_executor.run, address=ray_address)
    settings = RunSettings(
        modes=tuple(modes or MODES),
        phases=tuple(phases or ("train",)),
        threads=usable_cores() if threads is None else threads,
        out=out,
        **fields,
    )
    interrupted = False
    with RunProgress(err_console) as progress:
        try:
            run_id = run_suite(settings, progress=progress.update)
        except RunInterrupted as stop:
            run_id, interrupted = stop.run_id, True
    _report(out, run_id, tensorboard=tensorboard)
    if interrupted:
        err_console.print(f"interrupted: finished cells of run {run_id} are kept in {out}")
        raise typer.Exit(130)


REPORT_FORMATS = ("md", "html", "json", "csv", "terminal")
_EXTENSIONS = {"md": "md", "html": "html", "json": "json", "csv": "csv"}
_LABELS = {
    "md": "Markdown report",
    "html": "HTML report",
    "json": "JSON export",
    "csv": "CSV export",
}
Results = Annotated[Path, typer.Option("--results", help="Directory of the results database.")]
TensorBoardDir = Annotated[
    Path | None,
    typer.Option(
        "--tensorboard",
        help="Also write both twins' parity loss curves as TensorBoard scalars under this "
        "directory.",
    ),
]


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="A run id, or latest.")] = "latest",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="md, html, json, csv or terminal.")
    ] = "md",
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Output file (default: report-run<ID>.<ext> beside the database; - for stdout).",
        ),
    ] = None,
    results: Results = DEFAULT_OUT,
    tensorboard: TensorBoardDir = None,
) -> None:
    """Show a stored run again and write it as Markdown, HTML, JSON or CSV."""
    if fmt not in REPORT_FORMATS:
        raise TwinbenchError(f"unknown format '{fmt}'; valid: {', '.join(REPORT_FORMATS)}")
    if fmt == "terminal" and out is not None:
        raise TwinbenchError("--format terminal prints only; give another --format to use --out")
    to_stdout = out == "-"
    summary = _load_summary(results, _parse_run_id(run_id))
    if not to_stdout:
        from twinbench.report.terminal import print_summary

        print_summary(summary, console)
    if fmt != "terminal":
        target = "-" if to_stdout else Path(out or results / _default_name(summary, fmt))
        _write_document(summary, fmt, target)
    if tensorboard is not None:
        _write_tensorboard(summary, tensorboard, stdout_is_document=to_stdout)


def _parse_run_id(text: str) -> int | None:
    if text == "latest":
        return None
    if not text.isdigit():
        raise TwinbenchError(f"run id '{text}' is invalid; give a number or 'latest'")
    return int(text)


def _require_database(results: Path) -> None:
    """Refuse, before opening anything, a results directory that holds no database."""
    from twinbench.store import DB_NAME

    if not results.is_dir():
        raise TwinbenchError(
            f"no results directory {results}; run `twinbench run` first, or give --results DIR"
        )
    if not (results / DB_NAME).is_file():
        raise TwinbenchError(f"no twinbench results database ({DB_NAME}) in {results}")


def _load_summary(results: Path, run_id: int | None) -> RunSummary:
    from twinbench.report.summary import load_summary

    _require_database(results)
    return load_summary(results, run_id)


def _default_name(summary: RunSummary, fmt: str) -> str:
    return f"report-run{summary.run.id}.{_EXTENSIONS[fmt]}"


def _write_document(summary: RunSummary, fmt: str, target: Path | str) -> None:
    """Write the run in one format to a file, or to stdout when target is "-"."""
    try:
        written = _write_format(summary, fmt, target)
    except OSError as exc:
        raise TwinbenchError(f"cannot write the {fmt} report to {target}: {exc}") from exc
    if written is not None:
        console.print(f"{_LABELS[fmt]}: {written}", highlight=False, soft_wrap=True)


def _write_format(summary: RunSummary, fmt: str, target: Path | str) -> Path | None:
    if fmt in ("json", "csv"):
        from twinbench.report import export

        return (export.to_json if fmt == "json" else export.to_csv)(summary, target)
    from twinbench.report import html, markdown

    document = html if fmt == "html" else markdown
    if target == "-":
        sys.stdout.write(document.render(summary))
        return None
    return Path(document.write(summary, Path(target)))


def _write_tensorboard(
    summary: RunSummary, log_dir: Path, *, stdout_is_document: bool = False
) -> None:
    from twinbench.report.tensorboard import write_parity_curves

    try:
        folders = write_parity_curves(summary, log_dir)
    except OSError as exc:
        raise TwinbenchError(f"cannot write TensorBoard logs to {log_dir}: {exc}") from exc
    where = err_console if stdout_is_document else console
    if folders:
        groups = ", ".join(dict.fromkeys(folder.parent.name for folder in folders))
        where.print(
            f"TensorBoard: parity loss curves of {groups} in {log_dir} "
            f"(view with: tensorboard --logdir {log_dir})",
            highlight=False,
            soft_wrap=True,
        )
    else:
        where.print(f"TensorBoard: run {summary.run.id} stored no loss curves; nothing written")


def _report(out: Path, run_id: int | None, *, tensorboard: Path | None = None) -> None:
    """After run and sweep: the terminal summary, then the Markdown and HTML reports."""
    from twinbench.report.summary import load_summary
    from twinbench.report.terminal import print_summary

    summary = load_summary(out, run_id)
    print_summary(summary, console)
    for fmt in ("md", "html"):
        _write_document(summary, fmt, out / _default_name(summary, fmt))
    if tensorboard is not None:
        _write_tensorboard(summary, tensorboard)


CompareFormat = Annotated[str, typer.Option("--format", "-f", help="terminal, md or json.")]
COMPARE_FORMATS = ("terminal", "md", "json")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run id (or latest).")],
    run_b: Annotated[str, typer.Argument(help="The run compared with it (or latest).")],
    results: Results = DEFAULT_OUT,
    threshold: Annotated[
        float,
        typer.Option(help="Percent change below which a cell counts as unchanged.", min=0),
    ] = 10.0,
    fmt: CompareFormat = "terminal",
    fail_on_regression: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 if a cell is significantly slower in RUN_B by more than this percent "
            "(for CI).",
            min=0,
        ),
    ] = None,
) -> None:
    """Which cells got faster or slower from RUN_A to RUN_B, and whether that is significant.

    A cell is improved or regressed only when the change exceeds --threshold and is
    significant (Mann-Whitney p < 0.05 and the bootstrap CI of the ratio excludes 1).
    """
    from twinbench.report.compare import compare_runs, print_comparison, render_markdown
    from twinbench.store import DB_NAME, ResultStore

    if fmt not in COMPARE_FORMATS:
        raise TwinbenchError(f"unknown format '{fmt}'; valid: {', '.join(COMPARE_FORMATS)}")
    id_a, id_b = _parse_run_id(run_a), _parse_run_id(run_b)
    _require_database(results)
    with ResultStore(results / DB_NAME) as store:
        latest = store.latest_run_id()
        if latest is None:
            raise TwinbenchError(f"no runs in {results / DB_NAME} yet; run `twinbench run`")
        comparison = compare_runs(
            store,
            latest if id_a is None else id_a,
            latest if id_b is None else id_b,
            threshold=threshold / 100,
        )
    if fmt == "json":
        from twinbench.report.export import json_text

        print(json_text(comparison.to_dict()))
    elif fmt == "md":
        sys.stdout.write(render_markdown(comparison))
    else:
        print_comparison(comparison, console)
    if fail_on_regression is not None:
        regressed = comparison.regressions(fail_on_regression / 100)
        if regressed:
            names = ", ".join(
                f"{r.workload}/{r.size} {r.mode} {r.phase} "
                + ("failed in B" if r.broke_in_b else f"×{r.ratio:.2f}")
                for r in regressed
            )
            err_console.print(
                f"[red]regression:[/red] {len(regressed)} cells slower by more than "
                f"{fail_on_regression:g}% or failing in RUN_B: {escape(names)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)


def _csv(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also accept comma-separated values."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _publish_suite(
    out: Path, report: Any, text: str, save: Callable[[Any, Path], int], *, as_json: bool
) -> None:
    """Print a suite's result, store it as a run, and keep its rendered tables with the run so
    that `twinbench report` shows them later."""
    from twinbench.store import DB_NAME, ResultStore

    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    run_id = save(report, out)
    with ResultStore(out / DB_NAME) as store:
        store.set_run_info(run_id, "suite_report", text)
    console.print(f"stored as run {run_id} in {out / DB_NAME}", highlight=False, soft_wrap=True)


@app.command()
def optim(
    problem: Annotated[
        list[str] | None, typer.Option(help="linreg, logreg, rosenbrock (repeatable).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="newton, bfgs, lbfgs (repeatable).")
    ] = None,
    dim: Annotated[
        int | None, typer.Option(help="Problem dimension (default per problem).")
    ] = None,
    gtol: Annotated[float, typer.Option(help="Gradient-norm tolerance (inf-norm).")] = 1e-6,
    max_iter: Annotated[int, typer.Option(help="Iteration cap per solve.")] = 500,
    repeats: Annotated[int, typer.Option(help="Timed repetitions per solve.")] = 5,
    workload: Annotated[
        list[str] | None, typer.Option(help="First-order workloads (default linreg, mlp, xor).")
    ] = None,
    optimizer: Annotated[
        list[str] | None, typer.Option(help="sgd, sgd_momentum, adam, adamw (repeatable).")
    ] = None,
    size: Annotated[str, typer.Option(help="Size preset of the first-order workloads.")] = "tiny",
    steps: Annotated[int, typer.Option(help="First-order steps compared.")] = 200,
    quick: Annotated[bool, typer.Option("--quick", help="Small problems, one timed call.")] = False,
    no_first_order: Annotated[bool, typer.Option("--no-first-order")] = False,
    no_second_order: Annotated[bool, typer.Option("--no-second-order")] = False,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Optimizers compared: SGD/momentum/Adam/AdamW trajectories; Newton, BFGS, L-BFGS solves."""
    from twinbench.optim_suite import render_markdown, run_optim_suite, save

    with err_console.status("running the optimizer suite…") as status:
        report = run_optim_suite(
            problems=_csv(problem),
            methods=_csv(method),
            dim=dim,
            gtol=gtol,
            max_iter=max_iter,
            repeats=repeats,
            workloads=_csv(workload),
            optimizers=_csv(optimizer),
            size=size,
            steps=steps,
            seed=seed,
            quick=quick,
            first_order=not no_first_order,
            second_order=not no_second_order,
            progress=lambda m: status.update(escape(m)),
        )
    _publish_suite(out, report, render_markdown(report), save, as_json=as_json)


@app.command()
def autodiff(
    function: Annotated[
        list[str] | None, typer.Option(help="mlp, rosenbrock (repeatable).")
    ] = None,
    transform: Annotated[
        list[str] | None,
        typer.Option(
            help="grad, jvp, vjp, jacfwd, jacrev, hessian, hvp, per_example_grad, "
            "checkpoint, per_example_checkpoint (repeatable; default all)."
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes and short budgets.")] = False,
    dim: Annotated[int | None, typer.Option(help="Rosenbrock dimension for timing.")] = None,
    hidden: Annotated[int | None, typer.Option(help="MLP hidden width for timing.")] = None,
    batch: Annotated[int | None, typer.Option(help="MLP batch for timing.")] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Per-example-gradient batch sizes, e.g. 1,4,16,64,256.")
    ] = "",
    mode: Annotated[list[str] | None, typer.Option(help="eager and/or compiled.")] = None,
    threads: Threads = None,
    budget: Annotated[float | None, typer.Option(help="Seconds of timing per measurement.")] = None,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Skip the memory step.")] = False,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Autodiff compared: each transformation checked, timed eager and compiled, memory measured."""
    from twinbench.autodiff import FUNCTIONS, MODES, TRANSFORMS, format_summary, run_suite, save

    with err_console.status("running the autodiff suite…") as status:
        report = run_suite(
            functions=_csv(function) or FUNCTIONS,
            transforms=_csv(transform) or TRANSFORMS,
            quick=quick,
            dim=dim,
            hidden=hidden,
            batch=batch,
            batch_sizes=_int_list("--batch-sizes", batch_sizes) or None,
            modes=_csv(mode) or MODES,
            threads=threads,
            budget_s=budget,
            memory=not no_memory,
            seed=seed,
            progress=lambda m: status.update(escape(m)),
        )
    _publish_suite(out, report, format_summary(report), save, as_json=as_json)


@app.command()
def parallel(
    workload: Annotated[str, typer.Option(help="The workload trained in parallel.")] = "mlp",
    size: Annotated[str, typer.Option(help="Size preset (tiny: overhead only).")] = "small",
    framework: Annotated[list[str] | None, typer.Option(help="torch, jax (repeatable).")] = None,
    strategy: Annotated[
        list[str] | None, typer.Option(help="dp (data parallel), tp (tensor parallel).")
    ] = None,
    devices: Annotated[str, typer.Option(help="Device counts N, e.g. 1,2,4.")] = "1,2,4",
    scaling: Annotated[
        list[str] | None, typer.Option(help="weak (fixed per-device batch), strong (fixed global).")
    ] = None,
    jax_launch: Annotated[
        list[str] | None,
        typer.Option(help="mesh (one process, N devices), processes (jax.distributed)."),
    ] = None,
    device: Device = "cpu",
    per_device_batch: Annotated[int | None, typer.Option(help="Weak scaling batch.")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Strong scaling / tp batch.")] = None,
    steps: Annotated[int, typer.Option(help="Steps of the parity check (0: none).")] = 5,
    optimizer: Annotated[
        list[str] | None, typer.Option(help="Parity optimizers: sgd, adam, adamw.")
    ] = None,
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Parity only.")] = False,
    warmup: Annotated[int, typer.Option(help="Untimed steps before timing.")] = 3,
    repeats: Annotated[int, typer.Option(help="Timed samples per cell.")] = 10,
    block: Annotated[int, typer.Option(help="Steps per timed sample.")] = 5,
    threads: Annotated[int, typer.Option(help="Threads per device.")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds a cell may take in all.")] = 300.0,
    nnodes: Annotated[int, typer.Option(help="torch: machines in the run.")] = 1,
    node_rank: Annotated[int, typer.Option(help="torch: this machine's rank.")] = 0,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="torch: HOST:PORT of the c10d rendezvous (node 0).")
    ] = None,
    coordinator_address: Annotated[
        str | None, typer.Option(help="JAX: HOST:PORT of process 0's coordinator.")
    ] = None,
    num_processes: Annotated[int | None, typer.Option(help="JAX: processes in all.")] = None,
    process_id: Annotated[int | None, typer.Option(help="JAX: this process's id.")] = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a coordinator/rendezvous.")
    ] = 60.0,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
    workload_file: Annotated[
        str | None, typer.Option("--workload-file", help="Python file defining a WORKLOAD.")
    ] = None,
) -> None:
    """Data and tensor parallelism compared: parity with one device, then scaling (exit 1 if a
    parity check or a cell fails)."""
    from twinbench.parallel import MultiNode, ParallelSettings, render_markdown, run_parallel_suite
    from twinbench.parallel import save as save_parallel

    settings = ParallelSettings(
        workload=workload,
        workload_file=workload_file,
        size=size,
        frameworks=tuple(_csv(framework) or ("torch", "jax")),
        strategies=tuple(_csv(strategy) or ("dp", "tp")),
        devices=_int_list("--devices", devices),
        scalings=tuple(_csv(scaling) or ("weak", "strong")),
        jax_launch=tuple(_csv(jax_launch) or ("mesh",)),
        device=device,
        per_device_batch=per_device_batch,
        global_batch=global_batch,
        parity_steps=steps,
        parity_optimizers=tuple(_csv(optimizer) or ("sgd", "adam")),
        timing=not no_timing,
        warmup=warmup,
        repeats=repeats,
        block=block,
        threads=threads,
        seed=seed,
        timeout_s=timeout,
        multinode=MultiNode(
            nnodes=nnodes,
            node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint,
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            connect_timeout_s=connect_timeout,
        ),
    )
    with err_console.status("running the parallel suite…") as status:
        report = run_parallel_suite(settings, progress=lambda m: status.update(escape(m)))
    _publish_suite(out, report, render_markdown(report), save_parallel, as_json=as_json)
    if report.failures or not report.parity_passed:
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """The environment fingerprint a run records: machine, versions, threads."""
    from twinbench.harness.environment import fingerprint

    print(json.dumps(fingerprint(), indent=2))


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except TwinbenchError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (typer vendors click since 0.25)
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
