"""``parallel``: data and tensor parallelism compared across device counts."""

from __future__ import annotations

from typing import Annotated

import typer

from twinbench.cli.base import DEFAULT_OUT, app
from twinbench.cli.options import (
    AsJson,
    Device,
    Out,
    Seed,
    int_list,
    names_or,
    option,
    settings_from,
)
from twinbench.cli.suites import run_and_publish


@app.command()
def parallel(
    workload: Annotated[str, option("The workload trained in parallel.")] = "mlp",
    size: Annotated[str, option("Size preset (tiny: overhead only).")] = "small",
    framework: Annotated[list[str] | None, option("torch, jax (repeatable).")] = None,
    strategy: Annotated[
        list[str] | None, option("dp (data parallel), tp (tensor parallel).")
    ] = None,
    devices: Annotated[str, option("Device counts N, e.g. 1,2,4.")] = "1,2,4",
    scaling: Annotated[
        list[str] | None, option("weak (fixed per-device batch), strong (fixed global).")
    ] = None,
    jax_launch: Annotated[
        list[str] | None,
        option("mesh (one process, N devices), processes (jax.distributed)."),
    ] = None,
    device: Device = "cpu",
    per_device_batch: Annotated[int | None, option("Weak scaling batch.")] = None,
    global_batch: Annotated[int | None, option("Strong scaling / tp batch.")] = None,
    steps: Annotated[int, option("Steps of the parity check (0: none).")] = 5,
    optimizer: Annotated[list[str] | None, option("Parity optimizers: sgd, adam, adamw.")] = None,
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Parity only.")] = False,
    warmup: Annotated[int, option("Untimed steps after the first, before the timed blocks.")] = 3,
    repeats: Annotated[
        int, option("Timed blocks per cell: each is one sample of the step time.")
    ] = 10,
    block: Annotated[int, option("Steps per timed block (its time / steps is the sample).")] = 5,
    threads: Annotated[int, option("Threads per device (at most this machine's cores).")] = 1,
    timeout: Annotated[float, option("Seconds a cell may take in all.")] = 300.0,
    nnodes: Annotated[int, option("torch: machines in the run.")] = 1,
    node_rank: Annotated[int, option("torch: this machine's rank.")] = 0,
    rdzv_endpoint: Annotated[
        str | None, option("torch: HOST:PORT of the c10d rendezvous (node 0).")
    ] = None,
    coordinator_address: Annotated[
        str | None, option("JAX: HOST:PORT of process 0's coordinator.")
    ] = None,
    num_processes: Annotated[int | None, option("JAX: processes in all.")] = None,
    process_id: Annotated[int | None, option("JAX: this process's id.")] = None,
    connect_timeout: Annotated[
        float, option("Seconds to wait for a coordinator/rendezvous.")
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
    from twinbench.parallel import MultiNode, ParallelSettings, run_parallel_suite

    settings = settings_from(
        ParallelSettings,
        locals(),
        repeatable=("framework", "scaling"),
        strategies=names_or(strategy, ("dp", "tp")),
        devices=int_list("--devices", devices),
        jax_launch=names_or(jax_launch, ("mesh",)),
        parity_steps=steps,
        parity_optimizers=names_or(optimizer, ("sgd", "adam")),
        timing=not no_timing,
        timeout_s=timeout,
        multinode=settings_from(MultiNode, locals(), connect_timeout_s=connect_timeout),
    )
    report = run_and_publish(
        "the parallel suite", run_parallel_suite, settings, out=out, as_json=as_json
    )
    if report.failed:
        raise typer.Exit(1)
