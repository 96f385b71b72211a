"""One framework's process for the autodiff suite: ``python -m twinbench.autodiff.worker``.

It speaks the one worker protocol (`twinbench.harness.process.serve`): one request, one answer.
Requests (``kind``): ``check`` (float64 evaluations with finite-difference references),
``time`` (timed cells) and ``memory`` (one gradient step of the deep MLP, with or without
checkpointing). Only one framework is imported per process, so neither's thread pools,
allocator or compilation caches touch the other's numbers.
"""

from __future__ import annotations

import gc
import importlib
from pathlib import Path
from time import perf_counter
from types import ModuleType
from typing import Any

from twinbench.autodiff.functions import Sizes, make_deep_mlp, make_problem
from twinbench.harness import timing
from twinbench.harness.process import Handler, serve, thread_budget
from twinbench.harness.stats import Summary, is_converged, summarize

COMPILED_TOLERANCE = 1e-4  # float32: compiled and eager results may differ by reassociation


def side(framework: str) -> ModuleType:
    """The framework's side module, configured for this worker's thread budget."""
    module = importlib.import_module(f"twinbench.autodiff.{framework}_side")
    module.configure(thread_budget())
    return module


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def run_checks(request: dict[str, Any]) -> list[dict[str, Any]]:
    from twinbench.autodiff.checks import evaluate

    sizes = Sizes(**request["sizes"])
    problems = [make_problem(f, sizes, seed=request["seed"]) for f in request["functions"]]
    evaluations = evaluate(side(request["framework"]), problems, request["transforms"])
    return [e.to_dict() for e in evaluations]


def time_cell(
    sd: ModuleType, cell: dict[str, Any], sizes: Sizes, seed: int, budget: float
) -> dict[str, Any]:
    """Warm up, then time blocks until the median's 95 % CI is within ±2 % or ``budget`` ends."""
    import numpy as np

    from twinbench.autodiff.checks import relative_error

    result: dict[str, Any] = {**cell, "framework": sd.NAME, "status": "ok", "error": None}
    try:
        problem = make_problem(cell["function"], sizes, batch=cell.get("batch"), seed=seed)
        model = sd.build(problem, "float32")
        fn, args = sd.transform(model, cell["transform"])
        eager = sd.to_numpy(fn(*args))
        if cell["mode"] == "compiled":
            fn = sd.compile_fn(fn)
        start = perf_counter()
        out = fn(*args)
        sd.sync(out)
        result["first_call_s"] = perf_counter() - start  # compilation / tracing included
        deviation = relative_error(sd.to_numpy(out), eager)
        result["compiled_vs_eager"] = deviation
        if not np.all(np.isfinite(sd.to_numpy(out))):
            raise FloatingPointError("result contains NaN or infinity (diverged)")
        if deviation > COMPILED_TOLERANCE:
            raise ArithmeticError(
                f"compiled result differs from eager: {deviation:.2e} > {COMPILED_TOLERANCE:.0e}"
            )

        def step() -> Any:
            return fn(*args)

        result["warmup_steps"] = timing.warm_up(step, sd.sync)
        block = timing.calibrate_block(step, sd.sync)
        samples, summary = time_until_converged(step, sd.sync, block, budget)
        result.update(
            block=block,
            samples=samples,
            median_s=summary.median,
            ci_low_s=summary.ci_low,
            ci_high_s=summary.ci_high,
            iqr_s=summary.iqr,
            n=summary.n,
            converged=is_converged(summary),
            noisy=summary.noisy,
        )
    except Exception as exc:  # recorded with its message: never hidden, never fatal to the run
        result.update(status="error", error=_one_line(exc))
    return result


def time_until_converged(
    step: timing.Step, sync: timing.Sync, block: int, budget: float
) -> tuple[list[float], Summary]:
    """Blocks of ``block`` steps, a fifth of ``budget`` at a time, until the median's CI is
    within ±2 % or the budget is spent; the samples and their summary."""
    samples: list[float] = []
    deadline = perf_counter() + budget
    chunk = max(budget / 5, timing.MIN_BLOCK_SECONDS)
    while True:
        samples += timing.time_blocks(step, sync, block, chunk)
        summary = summarize(samples)
        if is_converged(summary) or perf_counter() >= deadline:
            return samples, summary


def run_timing(request: dict[str, Any]) -> list[dict[str, Any]]:
    sd = side(request["framework"])
    sizes = Sizes(**request["sizes"])
    return [
        time_cell(sd, cell, sizes, request["seed"], request["budget_s"])
        for cell in request["cells"]
    ]


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux ≥ 4.0); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_memory(request: dict[str, Any]) -> dict[str, Any]:
    """RSS high-water increase of the first gradient step over the RSS after setup.

    No warm-up step: memory a step frees stays in the C allocator's arenas, so a second step
    would reuse it without raising RSS at all. JAX compiles inside ``memory_step`` (setup).
    """
    sd = side(request["framework"])
    problem = make_deep_mlp(request["depth"], request["width"], request["batch"])
    step, accounting = sd.memory_step(problem, request["remat"])
    gc.collect()
    reset = _reset_peak()
    baseline = _status_bytes("VmRSS")
    sd.sync(step())
    peak = _status_bytes("VmHWM")
    rss = None
    if reset and baseline is not None and peak is not None:
        rss = peak - baseline
    return {
        "framework": sd.NAME,
        "remat": request["remat"],
        "rss_increase_bytes": rss,
        "rss_method": "VmHWM after reset (/proc/self/clear_refs) minus VmRSS after setup"
        if rss is not None
        else "unavailable: cannot reset the RSS high-water mark here",
        "accounting": accounting(),
    }


HANDLERS: dict[str, Handler] = {"check": run_checks, "time": run_timing, "memory": run_memory}


if __name__ == "__main__":
    serve(HANDLERS)
