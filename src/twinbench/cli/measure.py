"""``run`` and ``sweep``: settings from the options, the runner, then the reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from twinbench.cli.base import DEFAULT_OUT, app, err_console
from twinbench.cli.options import (
    AllowTf32,
    Budget,
    CompileMode,
    Device,
    Dtype,
    Modes,
    Out,
    Phases,
    Repeats,
    Seed,
    TensorBoardDir,
    Threads,
    Timeout,
    WorkloadFiles,
    int_list,
    option,
    settings_from,
)
from twinbench.cli.progress import RunProgress
from twinbench.cli.reports import write_run_reports
from twinbench.errors import TwinbenchError

EXECUTORS = ("local", "ray")
GradientCheckpointing = Annotated[
    str,
    option(
        "off, on or both: recompute each transformer block's activations in the backward "
        "pass (gpt, bert) instead of keeping them; both measures each cell with and without "
        "it, so the report shows the memory saved against the time paid."
    ),
]


@app.command()
def run(
    suite: Annotated[
        str,
        option(
            "default (mlp, gpt and lstm at small: a perceptron, a transformer, an RNN); tiny "
            "(linear regression, the 1-10-1 regression MLP and XOR at tiny); examples (those "
            "three at small); zoo (resnet, bert, gpt, lstm, gru at small); zoo-tiny (the zoo "
            "at tiny); all (every workload at small)."
        ),
    ] = "default",
    workload: Annotated[list[str] | None, option("Only these workloads (repeatable).")] = None,
    mode: Modes = None,
    phase: Phases = None,
    size: Annotated[list[str] | None, option("Size presets (overrides --suite).")] = None,
    dtype: Dtype = "float32",
    device: Device = "cpu",
    threads: Threads = None,
    budget: Annotated[
        float | None,
        option(
            "Seconds of steady-state timing per cell, over its processes (default: 5; 2 for "
            "--suite tiny, whose steps take well under a millisecond)."
        ),
    ] = None,
    repeats: Repeats = 2,
    timeout: Timeout = 900.0,
    out: Out = DEFAULT_OUT,
    allow_tf32: AllowTf32 = False,
    torch_compile_mode: CompileMode = "default",
    seed: Seed = 0,
    workload_file: WorkloadFiles = None,
    tensorboard: TensorBoardDir = None,
    gradient_checkpointing: GradientCheckpointing = "off",
    executor: Annotated[
        str,
        option(
            "local (this machine) or ray: each (workload, size) group becomes a Ray task "
            "(one GPU with --device cuda), parity first and every cell in its own subprocess as "
            "here; a node times one group at a time, since timing two at once on shared cores "
            'would corrupt both. Needs pip install "twinbench[ray]".'
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        option(
            "With --executor ray: HOST:PORT of a running cluster's head (default: start a "
            "local Ray instance on the loopback interface)."
        ),
    ] = None,
) -> None:
    """Time every workload in four modes, fairly, and say which framework is faster.

    Ctrl-C or SIGTERM stops the run: finished cells are kept, the run is marked interrupted,
    the report is written and every worker stopped; the exit code is 130 after Ctrl-C and 143
    after SIGTERM.
    """
    from twinbench.harness.runner import suite_budget, suite_selection
    from twinbench.validation import one_of

    suite_workloads, suite_size = suite_selection(suite)
    one_of("executor", (executor,), EXECUTORS)
    if ray_address is not None and executor != "ray":
        raise TwinbenchError("--ray-address needs --executor ray")
    _execute(
        locals(),
        workloads=tuple(workload or (() if workload_file else suite_workloads)),
        sizes=tuple(size or (suite_size,)),
        budget=suite_budget(suite) if budget is None else budget,
    )


@app.command()
def sweep(
    workloads: Annotated[list[str], typer.Argument(help="Workloads to sweep.")],
    batch_sizes: Annotated[str, option("Comma-separated batch sizes, e.g. 1,2,4,8,16.")] = "",
    seq_lens: Annotated[str, option("Comma-separated sequence lengths (sequence workloads).")] = "",
    size: Annotated[str, option("The size preset the sweep starts from.")] = "small",
    mode: Modes = None,
    phase: Phases = None,
    dtype: Dtype = "float32",
    device: Device = "cpu",
    threads: Threads = None,
    budget: Budget = 3.0,
    repeats: Repeats = 2,
    timeout: Timeout = 900.0,
    out: Out = DEFAULT_OUT,
    seed: Seed = 0,
    workload_file: WorkloadFiles = None,
    tensorboard: TensorBoardDir = None,
    gradient_checkpointing: GradientCheckpointing = "off",
    memory_budget: Annotated[
        str | None,
        option(
            "A memory size (8GiB, 512MB, or bytes): fit each mode's memory against the "
            "batch size (and against the sequence length with --seq-lens), predict the largest "
            "batch (the longest sequence, up to the position table) within it, then measure "
            "there to confirm."
        ),
    ] = None,
) -> None:
    """Step time, throughput and memory as the batch (or sequence) grows, per mode.

    Ctrl-C or SIGTERM stops it as it stops run: finished points kept, the report written, exit
    code 130 after Ctrl-C and 143 after SIGTERM.
    """
    sweep_batch, sweep_seq = (
        int_list("--batch-sizes", batch_sizes),
        int_list("--seq-lens", seq_lens),
    )
    if not sweep_batch and not sweep_seq:
        raise TwinbenchError("give --batch-sizes and/or --seq-lens, e.g. --batch-sizes 1,2,4,8")
    from twinbench.harness.memory_budget import parse_memory_size

    budget_bytes = (
        None if memory_budget is None else parse_memory_size("--memory-budget", memory_budget)
    )
    _execute(
        locals(),
        workloads=tuple(workloads),
        sizes=(size,),
        batch_sizes=sweep_batch,
        seq_lens=sweep_seq,
        memory_budget=budget_bytes,
    )


def _execute(options: Mapping[str, Any], **fields: Any) -> None:
    """Run the measurement a command's ``options`` (its ``locals()``: each one named like a
    `RunSettings` field is passed as it is) and ``fields`` describe, show progress, then the
    report; Ctrl-C keeps what finished."""
    from functools import partial

    from twinbench.harness.environment import usable_cores
    from twinbench.harness.runner import RunInterrupted, RunSettings
    from twinbench.harness.runner import run as run_suite
    from twinbench.modes import MODES

    if options.get("executor", "local") == "ray":
        from twinbench.harness import ray_executor

        run_suite = partial(ray_executor.run, address=options["ray_address"])
    threads = options["threads"]
    settings = settings_from(
        RunSettings,
        options,
        workload_files=tuple(options["workload_file"] or ()),
        modes=tuple(options["mode"] or MODES),
        phases=tuple(options["phase"] or ("train",)),
        threads=usable_cores() if threads is None else threads,
        **fields,
    )
    out, tensorboard = settings.out, options["tensorboard"]
    interrupted: RunInterrupted | None = None
    with RunProgress(err_console) as progress:
        try:
            run_id = run_suite(settings, progress=progress.update)
        except RunInterrupted as stop:
            run_id, interrupted = stop.run_id, stop
    write_run_reports(out, run_id, tensorboard=tensorboard)
    if interrupted is not None:
        err_console.print(
            f"interrupted ({interrupted.signal_name}): finished cells of run {run_id} are kept "
            f"in {out}"
        )
        raise typer.Exit(interrupted.exit_code)
