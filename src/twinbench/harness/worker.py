"""A cell's own process: ``python -m twinbench.harness.worker``.

Each (framework, mode) runs in a fresh process so no thread pool, allocator or import side effect
leaks from one cell into another. The parent sends one JSON request on stdin, then commands; the
worker answers with one signed JSON object per line on its original stdout (`serve` moves both
pipes out of the twins' reach). Anything else the frameworks print goes to stderr, which the
parent keeps for error reports.

Requests (``kind``): ``cell`` (set up, then answer ``measure``/``finish`` commands), ``parity``
(run the parity checks of one workload) and ``probe`` (matmul FLOP/s of one framework).
"""

from __future__ import annotations

import inspect
import json
import os
import resource
from pathlib import Path
from time import perf_counter
from typing import IO, Any

from twinbench.backends.protocols import Bench
from twinbench.harness import memory, timing
from twinbench.harness.environment import COMPILE_CACHE_VARIABLE
from twinbench.harness.process import Send, serve
from twinbench.harness.twin_source import count_code_lines
from twinbench.modes import FRAMEWORK_OF


def _workload(request: dict[str, Any]) -> Any:
    from twinbench.registry import builtin, from_file

    if request.get("workload_file"):
        return from_file(request["workload_file"])
    return builtin(request["workload"])


def _size(request: dict[str, Any]) -> Any:
    """The cell's size preset with a sweep's batch size or sequence length applied."""
    from twinbench.harness.point import Point

    point = Point(
        _workload(request),
        None,
        request["size"],
        request.get("batch_size"),
        request.get("seq_len"),
        bool(request.get("checkpointing")),
    )
    return point.workload, point.size


def _bench(request: dict[str, Any]) -> Bench:
    workload, size = _size(request)
    common = {
        "mode": request["mode"],
        "phase": request["phase"],
        "dtype": request["dtype"],
        "device": request["device"],
        "seed": request["seed"],
        "allow_tf32": request["allow_tf32"],
    }
    if FRAMEWORK_OF[request["mode"]] == "torch":
        from twinbench.backends.torch_timed import TorchBench

        return TorchBench(workload, size, compile_mode=request["compile_mode"], **common)
    from twinbench.backends.jax_timed import JaxBench

    return JaxBench(workload, size, **common)


def _set_torch_threads() -> None:
    """torch's thread pools at the cell's size, before any parallel work starts them."""
    import torch

    threads = int(os.environ.get("TWINBENCH_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)


def _workload_facts(request: dict[str, Any]) -> dict[str, Any]:
    """Parameter count and the lines of code of the twin this cell runs."""
    from twinbench.backends import canonical_shapes
    from twinbench.canonical import parameter_count

    workload, size = _size(request)
    framework = FRAMEWORK_OF[request["mode"]]
    source = inspect.getsourcefile(workload.twin(framework))
    return {
        "params": parameter_count(canonical_shapes(workload, size, framework, statistics=False)),
        "twin_loc": count_code_lines(Path(source)) if source else None,
    }


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _compile_cache_entries() -> int | None:
    """Files in this cell's compile caches now: 0 for a cold process, more for a warm one."""
    root = os.environ.get(COMPILE_CACHE_VARIABLE)
    if not root:
        return None
    return sum(len(files) for _, _, files in os.walk(root))


def _next_command(commands: IO[str], expected: str) -> bool:
    """Wait for the parent's next command; False when it closed the pipe instead."""
    line = commands.readline()
    if not line:
        return False
    command = json.loads(line)["cmd"]
    if command != expected:
        raise RuntimeError(f"the harness sent '{command}' where '{expected}' was due")
    return True


def serve_cell(request: dict[str, Any], send: Send, commands: IO[str]) -> None:
    """Set the cell up, report first-step costs, then time steps on the parent's command."""
    cache_entries = _compile_cache_entries()  # before anything compiles
    setup_start = perf_counter()
    framework = FRAMEWORK_OF[request["mode"]]
    if framework == "torch":
        _set_torch_threads()
    facts = _workload_facts(request)  # imports the harness and the twins: before the baseline
    baseline = memory.start_runtime(framework, request["device"])
    bench = _bench(request)
    setup_s = perf_counter() - setup_start
    # The parent sets a round's workers up side by side, then lets each compile alone.
    send({"set_up": {"setup_s": setup_s}})
    if not _next_command(commands, "compile"):
        return
    start = perf_counter()
    compile_s = bench.compile()
    bench.sync(bench.step())
    time_to_first_step = perf_counter() - start
    warmup_steps = timing.warm_up(bench.step, bench.sync)
    block = timing.calibrate_block(bench.step, bench.sync)
    # After the timed first step, so it never inflates it; jax-eager compiles the step for it.
    flops = bench.flops_per_step() if request.get("count_flops", True) else None
    send(
        {
            "ready": {
                "setup_s": setup_s,
                "compile_s": compile_s,
                "time_to_first_step_s": time_to_first_step,
                "warmup_steps": warmup_steps,
                "block_size": block,
                "flops_per_step": flops,
                "compile_cache_entries": cache_entries,
                **facts,
            }
        }
    )
    for line in commands:
        command = json.loads(line)
        if command["cmd"] == "measure":
            send({"samples": timing.time_blocks(bench.step, bench.sync, block, command["seconds"])})
        elif command["cmd"] == "finish":
            final = {
                "peak_rss_bytes": _peak_rss_bytes(),
                "peak_device_bytes": bench.peak_device_memory(),
            }
            send({"final": final | _memory_figures(bench, baseline, request)})
            return


def _memory_figures(
    bench: Bench, baseline: memory.Baseline, request: dict[str, Any]
) -> dict[str, Any]:
    """The memory step, then each framework's own account, all after the timed steps."""
    framework, device = FRAMEWORK_OF[request["mode"]], request["device"]
    figures = memory.memory_step(bench, baseline, framework=framework, device=device)
    compiled = getattr(bench, "_compiled", None)  # JaxBench's AOT-compiled step under jax-jit
    if compiled is not None:
        figures |= memory.xla_memory_analysis(compiled)
    if framework == "torch" and device == "cpu":
        eager_train = request["mode"] == "torch-eager" and request["phase"] == "train"
        figures |= memory.torch_profiled_step(bench, saved_activations=eager_train)
    return figures


def run_parity(request: dict[str, Any]) -> dict[str, Any]:
    from twinbench.parity import check_workload

    workload = _workload(request)
    result = check_workload(
        workload,
        workload.size(request["size"]),
        dtype=request["dtype"],
        steps=request["steps"],
        seed=request["seed"],
        device=request["device"],
        optimizers=request.get("optimizers"),
    )
    return result.to_dict()


def run_probe(request: dict[str, Any]) -> float:
    n = 4096 if request["device"] == "cuda" else 1024
    args = {
        "n": n,
        "dtype": request["dtype"],
        "device": request["device"],
        "seconds": request["seconds"],
    }
    if request["framework"] == "torch":
        from twinbench.backends.torch_timed import matmul_probe

        return matmul_probe(**args)
    from twinbench.backends.jax_timed import matmul_probe as jax_probe

    return jax_probe(**args)


def main() -> None:
    serve({"parity": run_parity, "probe": run_probe}, sessions={"cell": serve_cell})


if __name__ == "__main__":
    main()
