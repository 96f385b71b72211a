"""JAX twins of the second-order methods, in float64 (jitted, as JAX is usually run).

float64 comes from the scoped ``jax.enable_x64(True)`` context (``jax.experimental.enable_x64``
is gone from JAX 0.10): it turns 64-bit types on for this thread while a solve is traced and run,
and leaves the rest of the process — the float32 parity runners, other tests — as it was, unlike
``jax.config.update("jax_enable_x64", True)``. It is checked, not trusted: `prepare` raises if the
start point does not come out as float64. (A subprocess with ``JAX_ENABLE_X64=1`` would be the
other robust choice; it costs a second JAX start-up per run and is not needed for isolation here.)

``prepare(problem, method, ...)`` moves the data to the device and builds the jitted functions
once, and returns a zero-argument ``solve``; its first call compiles, later calls reuse that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.optimize
import numpy as np
import optax

from twinbench.errors import TwinbenchError
from twinbench.optim_suite.methods import EIGENVALUE_FLOOR, Outcome, newton_loop
from twinbench.optim_suite.problems import Problem

Data = dict[str, jax.Array]
Objective = Callable[[jax.Array, Data], jax.Array]
Run = Callable[[jax.Array, Data], Outcome]  # a solver bound to its objective and tolerances


def _linreg(w: jax.Array, d: Data) -> jax.Array:
    return 0.5 * jnp.mean((d["x"] @ w - d["y"]) ** 2)


def _logreg(w: jax.Array, d: Data) -> jax.Array:
    return jnp.mean(jax.nn.softplus(-d["y"] * (d["x"] @ w))) + 0.5 * d["l2"] * (w @ w)


def _rosenbrock(w: jax.Array, _d: Data) -> jax.Array:
    return jnp.sum(100.0 * (w[1:] - w[:-1] ** 2) ** 2 + (1.0 - w[:-1]) ** 2)


OBJECTIVES: dict[str, Objective] = {
    "linreg": _linreg,
    "logreg": _logreg,
    "rosenbrock": _rosenbrock,
}


def _newton(fn: Objective, gtol: float, max_iter: int) -> Run:
    value = jax.jit(fn)

    @jax.jit
    def direction(x: jax.Array, data: Data) -> tuple[jax.Array, jax.Array, jax.Array]:
        g, h = jax.grad(fn)(x, data), jax.hessian(fn)(x, data)
        p = -jnp.linalg.solve(h, g)
        # Where H is not positive definite, modified Newton instead (both are computed: jit).
        eigenvalues, q = jnp.linalg.eigh(h)
        floor = EIGENVALUE_FLOOR * jnp.max(jnp.abs(eigenvalues))
        modified = -(q @ ((q.T @ g) / jnp.maximum(jnp.abs(eigenvalues), floor)))
        p = jnp.where(g @ p < 0, p, modified)
        return p, g @ p, jnp.max(jnp.abs(g))

    def run(x0: jax.Array, data: Data) -> Outcome:
        def direction_floats(x: jax.Array) -> tuple[jax.Array, float, float]:
            p, slope, grad_norm = direction(x, data)
            return p, float(slope), float(grad_norm)

        return newton_loop(
            lambda x: float(value(x, data)),
            direction_floats,
            lambda x, t, p: x + t * p,
            lambda x: np.asarray(x, dtype=np.float64),
            x0,
            gtol=gtol,
            max_iter=max_iter,
        )

    return run


def _bfgs(fn: Objective, gtol: float, max_iter: int) -> Run:
    @jax.jit
    def minimize(x0: jax.Array, data: Data) -> Any:
        options = {"gtol": gtol, "maxiter": max_iter}  # gtol tested on the infinity norm
        return jax.scipy.optimize.minimize(fn, x0, args=(data,), method="BFGS", options=options)

    def run(x0: jax.Array, data: Data) -> Outcome:
        result = minimize(x0, data)
        status = int(result.status)
        return Outcome(
            np.asarray(result.x, dtype=np.float64),
            int(result.nit),
            int(result.nfev),
            converged=bool(result.success),
            note="" if status == 0 else f"jax.scipy BFGS status {status}",
        )

    return run


def _lbfgs(fn: Objective, gtol: float, max_iter: int) -> Run:
    """optax's documented L-BFGS loop, as one jitted ``lax.while_loop``.

    Function evaluations are 1 (the first value and gradient) plus the zoom line search's trial
    steps: `optax.value_and_grad_from_state` reuses the value and gradient the line search
    computed at the accepted point.
    """
    solver = optax.lbfgs(memory_size=10)

    @jax.jit
    def minimize(x0: jax.Array, data: Data) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        def f(w: jax.Array) -> jax.Array:
            return fn(w, data)

        value_and_grad = optax.value_and_grad_from_state(f)

        def step(carry: tuple[jax.Array, Any, jax.Array]) -> tuple[jax.Array, Any, jax.Array]:
            x, state, evals = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=f)
            evals = evals + optax.tree.get(state, "num_linesearch_steps")
            x_next: jax.Array = optax.apply_updates(x, updates)
            return x_next, state, evals

        def keep_going(carry: tuple[jax.Array, Any, jax.Array]) -> jax.Array:
            _, state, _ = carry
            count: jax.Array = optax.tree.get(state, "count")  # optax ships no types
            grad_norm = jnp.max(jnp.abs(optax.tree.get(state, "grad")))
            return (count == 0) | ((count < max_iter) & (grad_norm > gtol))

        init = (x0, solver.init(x0), jnp.asarray(1))
        x, state, evals = jax.lax.while_loop(keep_going, step, init)
        grad_norm = jnp.max(jnp.abs(jax.grad(f)(x)))
        return x, optax.tree.get(state, "count"), evals, grad_norm

    def run(x0: jax.Array, data: Data) -> Outcome:
        x, count, evals, grad_norm = minimize(x0, data)
        finite = bool(jnp.isfinite(grad_norm))
        return Outcome(
            np.asarray(x, dtype=np.float64),
            int(count),
            int(evals),
            converged=finite and float(grad_norm) <= gtol,
            note="" if finite else "non-finite",
        )

    return run


_SOLVERS: dict[str, Callable[[Objective, float, int], Run]] = {
    "newton": _newton,
    "bfgs": _bfgs,
    "lbfgs": _lbfgs,
}


def prepare(problem: Problem, method: str, *, gtol: float, max_iter: int) -> Callable[[], Outcome]:
    """A zero-argument float64 solve of ``problem`` by ``method`` (first call compiles)."""
    with jax.enable_x64(True):
        data = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in problem.data.items()}
        x0 = jnp.asarray(problem.x0, dtype=jnp.float64)
        if x0.dtype != jnp.float64:
            raise TwinbenchError(f"JAX gave {x0.dtype}, not float64; set JAX_ENABLE_X64=1")
    run = _SOLVERS[method](OBJECTIVES[problem.name], gtol, max_iter)

    def solve() -> Outcome:
        with jax.enable_x64(True):
            return run(x0, data)

    return solve
