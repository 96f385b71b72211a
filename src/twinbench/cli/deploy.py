"""``twinbench deploy``: the deploy suite's command."""

from __future__ import annotations

from typing import Annotated

from twinbench.cli.base import DEFAULT_OUT, app
from twinbench.cli.options import (
    AsJson,
    Out,
    Seed,
    Threads,
    int_list,
    names_or,
    option,
    settings_from,
)
from twinbench.cli.suites import run_and_publish


@app.command()
def deploy(
    workload: Annotated[
        list[str] | None, option("Built-in workload (repeatable; default all).")
    ] = None,
    size: Annotated[str, option("Size preset: tiny, small or full.")] = "small",
    path: Annotated[
        list[str] | None,
        option(
            "native, onnx or all, or a path: torch-aoti, jax-stablehlo, torch-onnx, "
            "jax-onnx (repeatable; default all)."
        ),
    ] = None,
    batch_sizes: Annotated[
        str,
        option("Batch sizes each artefact is called at (default 1,N: N the size's)."),
    ] = "",
    repeats: Annotated[
        int, option("Fresh serving processes per path (cold starts, latency groups).")
    ] = 3,
    budget: Annotated[
        float, option("Most seconds of latency timing per batch size per process (≤ 2,000 calls).")
    ] = 1.0,
    threads: Threads = None,
    seed: Seed = 0,
    out: Out = DEFAULT_OUT,
    as_json: AsJson = False,
) -> None:
    """Deployment compared: export, size, cold start, latency and fidelity of the shipped model.

    Paths: torch.export → AOTInductor, jax.export → StableHLO, and ONNX Runtime for both.
    """
    from twinbench.deploy import DeploySettings, run_deploy
    from twinbench.deploy.settings import paths_named

    settings = settings_from(
        DeploySettings,
        locals(),
        repeatable=("workload",),
        paths=paths_named(names_or(path, ("all",))),
        batch_sizes=int_list("--batch-sizes", batch_sizes) or None,
        budget_s=budget,
    )
    settings.validate()
    settings.check_environment()  # before the spinner: an unwritable --out is one line
    run_and_publish("the deploy suite", run_deploy, settings, out=out, as_json=as_json)
