"""PyTorch twins of the second-order methods, in float64 (eager, as PyTorch is usually run).

``prepare(problem, method, ...)`` moves the problem's data to float64 tensors once and returns a
zero-argument ``solve`` that runs the method from the problem's start point, so timing a call
measures the solve only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from twinbench.optim_suite.methods import (
    ARMIJO_C1,
    EIGENVALUE_FLOOR,
    MIN_STEP,
    Outcome,
    newton_loop,
)
from twinbench.optim_suite.problems import Problem

Data = dict[str, torch.Tensor]


def _linreg(w: torch.Tensor, d: Data) -> torch.Tensor:
    return 0.5 * torch.mean((d["x"] @ w - d["y"]) ** 2)


def _logreg(w: torch.Tensor, d: Data) -> torch.Tensor:
    return torch.mean(F.softplus(-d["y"] * (d["x"] @ w))) + 0.5 * d["l2"] * (w @ w)


def _rosenbrock(w: torch.Tensor, _d: Data) -> torch.Tensor:
    return torch.sum(100.0 * (w[1:] - w[:-1] ** 2) ** 2 + (1.0 - w[:-1]) ** 2)


OBJECTIVES: dict[str, Callable[[torch.Tensor, Data], torch.Tensor]] = {
    "linreg": _linreg,
    "logreg": _logreg,
    "rosenbrock": _rosenbrock,
}


def objective(problem: Problem) -> Callable[[torch.Tensor], torch.Tensor]:
    """The problem's objective as a function of one float64 tensor of shape (dim,)."""
    data = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in problem.data.items()}
    fn = OBJECTIVES[problem.name]
    return lambda w: fn(w, data)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64)


def _newton(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, gtol: float, max_iter: int
) -> Outcome:
    grad, hessian = torch.func.grad(f), torch.func.hessian(f)

    def direction(x: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        g = grad(x)
        grad_norm = float(g.abs().max())
        if not math.isfinite(grad_norm):  # the loop records it; the solvers below would raise
            return g, math.nan, grad_norm
        h = hessian(x)
        try:
            p = -torch.linalg.solve(h, g)
        # singular H: JAX returns NaN/Inf here, so do we. (torch.linalg re-exports the error
        # at run time without declaring it in its stubs.)
        except torch.linalg.LinAlgError:  # type: ignore[attr-defined]
            return g, math.nan, grad_norm
        slope = g @ p
        if not bool(slope < 0):  # H is not positive definite here: modified Newton instead
            eigenvalues, q = torch.linalg.eigh(h)
            floor = EIGENVALUE_FLOOR * eigenvalues.abs().max()
            p = -(q @ ((q.T @ g) / torch.clamp(eigenvalues.abs(), min=floor)))
            slope = g @ p
        return p, float(slope), grad_norm

    with torch.no_grad():
        return newton_loop(
            lambda x: float(f(x)),
            direction,
            lambda x, t, p: x + t * p,
            _numpy,
            x0,
            gtol=gtol,
            max_iter=max_iter,
        )


def _bfgs(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, gtol: float, max_iter: int
) -> Outcome:
    """Textbook BFGS (Nocedal & Wright, Algorithm 6.1) on the inverse Hessian H.

    Written here because PyTorch has no BFGS. Step length: Armijo backtracking from t = 1;
    the update is skipped when the curvature sᵀy is not safely positive (which a Wolfe line
    search would guarantee); H starts as (sᵀy / yᵀy)·I after the first step (N&W eq. 6.20).
    """
    value_and_grad = torch.func.grad_and_value(f)
    eye = torch.eye(len(x0), dtype=x0.dtype)
    h = eye.clone()
    g, fx = value_and_grad(x0)
    x, evals = x0, 1
    for iteration in range(max_iter + 1):
        grad_norm = float(g.abs().max())
        if not np.isfinite(grad_norm) or not bool(torch.isfinite(fx)):
            return Outcome(_numpy(x), iteration, evals, note="non-finite")
        if grad_norm <= gtol:
            return Outcome(_numpy(x), iteration, evals, converged=True)
        if iteration == max_iter:
            break
        p = -(h @ g)
        slope = float(g @ p)
        if not slope < 0:  # H lost positive definiteness to rounding: restart from the identity
            h, p, slope = eye.clone(), -g, float(-(g @ g))
        t = 1.0
        while True:
            g_new, f_new = value_and_grad(x + t * p)
            evals += 1
            if float(f_new) <= float(fx) + ARMIJO_C1 * t * slope:
                break
            t *= 0.5
            if t < MIN_STEP:
                return Outcome(_numpy(x), iteration, evals, note="line search stalled")
        s, y = t * p, g_new - g
        sy = float(s @ y)
        if sy > 1e-10 * float(torch.linalg.norm(s) * torch.linalg.norm(y)):
            if iteration == 0:
                h = (sy / float(y @ y)) * eye
            rho = 1.0 / sy
            v = eye - rho * torch.outer(s, y)
            h = v @ h @ v.T + rho * torch.outer(s, s)
        x, fx, g = x + s, f_new, g_new
    return Outcome(_numpy(x), max_iter, evals, note="max_iter reached")


def _lbfgs(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, gtol: float, max_iter: int
) -> Outcome:
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max_iter,
        max_eval=25 * max_iter,  # room for the line search; the default (1.25 × max_iter) stops it
        tolerance_grad=gtol,  # tested on max |g|, the infinity norm
        tolerance_change=0.0,  # stop on the gradient test (or max_iter) only
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = f(x)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
    state = optimizer.state[x]
    g = torch.func.grad(f)(x.detach())
    grad_norm = float(g.abs().max())
    return Outcome(
        _numpy(x),
        int(state.get("n_iter", 0)),
        int(state.get("func_evals", 1)),
        converged=bool(grad_norm <= gtol),
        note="" if np.isfinite(grad_norm) else "non-finite",
    )


_SOLVERS = {"newton": _newton, "bfgs": _bfgs, "lbfgs": _lbfgs}


def prepare(problem: Problem, method: str, *, gtol: float, max_iter: int) -> Callable[[], Outcome]:
    """A zero-argument solve of ``problem`` by ``method``, data already in float64 tensors."""
    f = objective(problem)
    x0 = torch.as_tensor(problem.x0, dtype=torch.float64)
    solver = _SOLVERS[method]
    return lambda: solver(f, x0.clone(), gtol, max_iter)
