"""``dynamic``: changing shapes, recompiles, graph breaks and data-dependent control flow."""

from __future__ import annotations

from typing import Annotated

from twinbench.cli.base import DEFAULT_OUT, app
from twinbench.cli.options import AsJson, Out, Seed, Threads, csv_list, option, settings_from
from twinbench.cli.suites import run_and_publish


@app.command()
def dynamic(
    workload: Annotated[
        str | None,
        option(
            "gpt, lstm, gru or bert (seq-len; default gpt); mlp, which trains, or gpt, which "
            "serves, forward passes only (batch; default mlp); gpt (generate)."
        ),
    ] = None,
    scenario: Annotated[str, option("seq-len, batch, generate or control-flow.")] = "seq-len",
    size: Annotated[str, option("Size preset: tiny, small or full.")] = "tiny",
    steps: Annotated[
        int | None, option("Steps of the schedule (tiny 8, small 100; generate: prompts).")
    ] = None,
    bucket: Annotated[
        int | None, option("Bucket width of the padding strategies (powers of two).")
    ] = None,
    lengths: Annotated[
        str, option("lognormal, uniform, or explicit lengths such as 12,30,7.")
    ] = "lognormal",
    strategy: Annotated[
        list[str] | None,
        option(
            "torch-eager, torch-compile, torch-compile-dynamic, torch-mark-dynamic, "
            "torch-compile-bucketed, jax-jit, jax-jit-bucketed, jax-jit-pad-max, jax-eager "
            "(repeatable; default all the workload supports)."
        ),
    ] = None,
    repeats: Annotated[int, option("Worker processes per strategy, so wall times have a CI.")] = 2,
    torch_backend: Annotated[
        str, option("torch.compile backend: inductor, aot_eager or eager.")
    ] = "inductor",
    threads: Threads = None,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Dynamic vs static graphs: what changing shapes and control flow cost each framework."""
    from twinbench.dynamic import DynamicSettings, run_dynamic

    chosen = csv_list(strategy)
    settings = settings_from(
        DynamicSettings, locals(), strategies=tuple(chosen) if chosen else None
    )
    settings.validate()  # bad input: one line, before anything starts
    run_and_publish("the dynamic suite", run_dynamic, settings, out=out, as_json=as_json)
