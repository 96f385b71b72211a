"""What the second-order methods share across frameworks: names, labels, the outcome type and
Newton's outer loop.

Newton's method is the same algorithm in both frameworks, so its outer loop is written once, here,
over two framework callbacks (the objective, and the Newton direction from the exact Hessian and
the framework's linear solver). Only floats cross into this loop, so the step-length rule, the
stopping test and the counting are identical for both twins by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("newton", "bfgs", "lbfgs")

# (method, framework) -> what actually runs; the table shows it so nobody mistakes our own BFGS
# for a PyTorch API.
IMPLEMENTATIONS = {
    ("newton", "torch"): "torch.func.hessian + torch.linalg.solve (twinbench loop)",
    ("newton", "jax"): "jax.hessian + jnp.linalg.solve (twinbench loop)",
    ("bfgs", "torch"): "textbook BFGS written in torch by twinbench (PyTorch ships no BFGS)",
    ("bfgs", "jax"): "jax.scipy.optimize.minimize(method='BFGS')",
    ("lbfgs", "torch"): "torch.optim.LBFGS(line_search_fn='strong_wolfe', history_size=10)",
    ("lbfgs", "jax"): "optax.lbfgs(memory_size=10) + zoom linesearch",
}

ARMIJO_C1 = 1e-4  # sufficient-decrease constant of the backtracking line search
MIN_STEP = 1e-12  # a step length below this means the line search has stalled
# Modified Newton where H is not positive definite: H's eigenvalues λ are replaced by
# max(|λ|, EIGENVALUE_FLOOR·max|λ|) (Nocedal & Wright §3.4), which gives a descent direction.
EIGENVALUE_FLOOR = 1e-8


@dataclass
class Outcome:
    """What one call of a solver returns: the minimiser and the cost of finding it."""

    x: np.ndarray
    iterations: int
    function_evals: int  # evaluations of the objective (with or without its gradient)
    hessian_evals: int = 0
    converged: bool = False  # the solver's own gradient test (infinity norm <= gtol) passed
    note: str = ""


def newton_loop(
    value: Callable[[Any], float],
    direction: Callable[[Any], tuple[Any, float, float]],
    step: Callable[[Any, float, Any], Any],
    to_numpy: Callable[[Any], np.ndarray],
    x0: Any,
    *,
    gtol: float,
    max_iter: int,
) -> Outcome:
    """Damped Newton: x ← x + t·p with p = −H⁻¹g and t halved from 1 until f decreases enough.

    ``direction(x)`` returns ``(p, gᵀp, ‖g‖∞)``; where the Newton direction is not a descent
    direction (H not positive definite, gᵀp ≥ 0) the framework code returns the modified-Newton
    direction instead (see ``EIGENVALUE_FLOOR``). ``step(x, t, p)`` is x + t·p. A full step
    (t = 1) is tried first, so a quadratic objective is solved in exactly one iteration.
    """
    x, fx = x0, value(x0)
    function_evals, hessian_evals = 1, 0
    for iteration in range(max_iter + 1):
        p, slope, grad_norm = direction(x)
        hessian_evals += 1
        if not (math.isfinite(grad_norm) and math.isfinite(fx) and math.isfinite(slope)):
            return Outcome(to_numpy(x), iteration, function_evals, hessian_evals, note="non-finite")
        if grad_norm <= gtol:
            return Outcome(to_numpy(x), iteration, function_evals, hessian_evals, converged=True)
        if iteration == max_iter:
            break
        t = 1.0
        while True:
            candidate = step(x, t, p)
            f_candidate = value(candidate)
            function_evals += 1
            if f_candidate <= fx + ARMIJO_C1 * t * slope:
                break
            t *= 0.5
            if t < MIN_STEP:
                note = "line search stalled"
                return Outcome(to_numpy(x), iteration, function_evals, hessian_evals, note=note)
        x, fx = candidate, f_candidate
    return Outcome(to_numpy(x), max_iter, function_evals, hessian_evals, note="max_iter reached")
