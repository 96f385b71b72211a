"""Second-order solves: one (problem, method, framework) solved, checked in NumPy and timed.

Timing: the first call is timed alone (``first_call_s``; for JAX it includes tracing and XLA
compilation). Then `twinbench.harness.timing` calibrates a block of calls lasting at least
``MIN_BLOCK_SECONDS`` — one call when a solve takes that long already — and each of ``repeats``
samples is one block's mean call time, summarised by `twinbench.harness.stats.summarize` (median
and its bootstrap CI). A solve returns its minimiser as a NumPy array, so every call ends with
the result on the host: that is the synchronisation. Both frameworks run in this one process
with their default thread pools.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np

from twinbench.errors import TwinbenchError
from twinbench.harness import timing
from twinbench.harness.stats import summarize
from twinbench.optim_suite.methods import IMPLEMENTATIONS, METHODS, Outcome
from twinbench.optim_suite.problems import Problem
from twinbench.validation import one_of

FRAMEWORKS = ("torch", "jax")

Solve = Callable[[], Outcome]


@dataclass
class SecondOrderResult:
    """One (problem, method, framework) solve.

    ``status``: converged (the solver's own ∞-norm gradient test passed), failed (stopped
    without converging: see ``note``), diverged (NaN/Inf: the numbers are not a result) or error.
    Distances are ∞-norms: to the other framework's minimiser for the same method, and to the
    problem's reference minimiser (``reference_kind`` says where it comes from).
    """

    problem: str
    dim: int
    method: str
    framework: str
    implementation: str
    status: str
    iterations: int | None = None
    function_evals: int | None = None
    hessian_evals: int | None = None
    final_objective: float | None = None  # evaluated in NumPy float64, not by the framework
    grad_norm: float | None = None  # ∞-norm, NumPy float64
    wall_s: float | None = None  # median of the timed samples
    wall_ci_low_s: float | None = None  # the median's 95 % bootstrap CI
    wall_ci_high_s: float | None = None
    wall_block: int | None = None  # calls per timed sample
    wall_samples: list[float] = field(default_factory=list)
    first_call_s: float | None = None
    distance_other: float | None = None
    distance_reference: float | None = None
    reference_kind: str = "none"
    note: str = ""
    x: list[float] | None = None


def _preparers() -> dict[str, Callable[..., Solve]]:
    from twinbench.optim_suite import jax_methods, torch_methods

    return {"torch": torch_methods.prepare, "jax": jax_methods.prepare}


def _on_host(_outcome: object) -> None:
    """A solve's minimiser is already a NumPy array: nothing is left to wait for."""


def _time(solve: Solve, repeats: int, result: SecondOrderResult) -> Outcome:
    """Time ``solve`` into ``result``; returns the first call's outcome."""
    start = perf_counter()
    outcome = solve()
    result.first_call_s = perf_counter() - start
    block = timing.calibrate_block(solve, _on_host)
    samples = [timing.run_steps(solve, _on_host, block) / block for _ in range(repeats)]
    summary = summarize(samples)
    result.wall_block, result.wall_samples = block, samples
    result.wall_s, result.wall_ci_low_s, result.wall_ci_high_s = (
        summary.median,
        summary.ci_low,
        summary.ci_high,
    )
    return outcome


def solve_second_order(
    problem: Problem,
    method: str,
    framework: str,
    *,
    gtol: float = 1e-6,
    max_iter: int = 500,
    repeats: int = 3,
) -> SecondOrderResult:
    """Solve ``problem`` with ``method`` in ``framework``, check the minimiser and time it."""
    one_of("method", [method], METHODS)
    one_of("framework", [framework], FRAMEWORKS)
    result = SecondOrderResult(
        problem.name,
        problem.dim,
        method,
        framework,
        IMPLEMENTATIONS[(method, framework)],
        "error",
        reference_kind=problem.reference_kind,
    )
    try:
        solve = _preparers()[framework](problem, method, gtol=gtol, max_iter=max_iter)
        outcome = _time(solve, repeats, result)
    except TwinbenchError:
        raise
    except Exception as exc:  # a solver that raises is recorded; the suite goes on
        result.note = f"{type(exc).__name__}: {exc}"
        return result
    _judge(problem, outcome, result)
    return result


def _judge(problem: Problem, outcome: Outcome, result: SecondOrderResult) -> None:
    """Fill in ``result`` from ``outcome``, its objective and gradient evaluated in NumPy."""
    result.iterations, result.function_evals = outcome.iterations, outcome.function_evals
    result.hessian_evals = outcome.hessian_evals or None
    result.note = outcome.note
    x = outcome.x
    with np.errstate(all="ignore"):
        objective = problem.value(x) if np.isfinite(x).all() else math.nan
        grad = problem.grad(x) if np.isfinite(x).all() else np.full_like(x, np.nan)
    if outcome.note == "non-finite" or not (math.isfinite(objective) and np.isfinite(grad).all()):
        result.status = "diverged"
        result.note = result.note or "non-finite iterate"
        return
    result.status = "converged" if outcome.converged else "failed"
    result.final_objective = objective
    result.grad_norm = float(np.abs(grad).max())
    result.x = [float(v) for v in x]
    if problem.reference is not None:
        result.distance_reference = float(np.abs(x - problem.reference).max())


def pair_distances(pair: list[SecondOrderResult]) -> None:
    """Set each result's distance to the other framework's minimiser (same method)."""
    a, b = pair
    if a.x is not None and b.x is not None:
        distance = float(np.abs(np.asarray(a.x) - np.asarray(b.x)).max())
        a.distance_other = b.distance_other = distance
