"""JAX's idiom for every transformation: ``jax.grad`` & co., ``jax.vmap``, ``jax.checkpoint``.

The same pure functions of a flat parameter vector as ``torch_side``, with the same names. Every
transformation composes with every other, checkpointing included (``jax.checkpoint`` is itself a
transformation, so ``vmap(grad(checkpoint(f)))`` is ordinary JAX).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from twinbench.autodiff.functions import Problem, mlp_param_shapes, segments

NAME = "jax"
HOW = {
    "grad": ("native", "jax.value_and_grad"),
    "jvp": ("native", "jax.jvp"),
    "vjp": ("native", "jax.vjp"),
    "jacfwd": ("native", "jax.jacfwd"),
    "jacrev": ("native", "jax.jacrev"),
    "hessian": ("native", "jax.hessian"),
    "hvp": ("composed", "jax.jvp(jax.grad(f))"),
    "per_example_grad": ("composed", "jax.vmap(jax.grad(f))"),
    "checkpoint": ("native", "jax.checkpoint + jax.grad"),
    "per_example_checkpoint": ("composed", "jax.vmap(jax.grad(jax.checkpoint(...)))"),
}
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}

Array = jax.Array


# ---- the functions ------------------------------------------------------------------------------


def unpack(x: Array, layers: tuple[int, ...]) -> list[tuple[Array, Array]]:
    """Split the flat parameters into (W, b) per layer, W (fan_in, fan_out)."""
    params, start = [], 0
    for w_shape, (b_size,) in mlp_param_shapes(layers):
        w_size = w_shape[0] * w_shape[1]
        w = x[start : start + w_size].reshape(w_shape)
        params.append((w, x[start + w_size : start + w_size + b_size]))
        start += w_size + b_size
    return params


def _hidden(h: Array, params: list[tuple[Array, Array]]) -> Array:
    """Hidden layers applied in turn: tanh(h @ W + b)."""
    for w, b in params:
        h = jnp.tanh(h @ w + b[None, :])
    return h


def mlp(x: Array, inputs: Array, layers: tuple[int, ...], remat: bool = False) -> Array:
    """(B, in) -> (B, out); with ``remat`` each segment of hidden layers is checkpointed."""
    *hidden, (w_out, b_out) = unpack(x, layers)
    run = jax.checkpoint(_hidden) if remat else _hidden
    h = inputs
    for segment in segments(len(hidden)):
        h = run(h, [hidden[i] for i in segment])
    return h @ w_out + b_out[None, :]


def mlp_losses(
    x: Array, inputs: Array, targets: Array, layers: tuple[int, ...], remat: bool = False
) -> Array:
    """Per-example squared errors, (B,)."""
    return 0.5 * jnp.sum((mlp(x, inputs, layers, remat) - targets) ** 2, axis=-1)


def rosenbrock_residuals(x: Array) -> Array:
    """(2(n-1),): rosenbrock(x) is the sum of their squares."""
    return jnp.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def rosenbrock(x: Array, remat: bool = False) -> Array:
    residuals = jax.checkpoint(rosenbrock_residuals) if remat else rosenbrock_residuals
    return jnp.sum(residuals(x) ** 2)


@dataclass
class Model:
    """One problem bound to arrays: the three views of ``functions`` as JAX functions."""

    problem: Problem
    x: Array
    tangent: Array
    cotangent: Array
    examples: tuple[Array, ...]

    def vector(self, x: Array) -> Array:
        if self.problem.name == "mlp":
            inputs, targets = self.examples
            return mlp_losses(x, inputs, targets, self.problem.layers)
        return rosenbrock_residuals(x)

    def scalar(self, x: Array, remat: bool = False) -> Array:
        if self.problem.name == "mlp":
            inputs, targets = self.examples
            return jnp.mean(mlp_losses(x, inputs, targets, self.problem.layers, remat))
        return rosenbrock(x, remat)

    def example(self, x: Array, *example: Array, remat: bool = False) -> Array:
        """Loss of one example; ``example`` holds unbatched slices of ``self.examples``."""
        if self.problem.name == "mlp":
            inputs, targets = (e[None, :] for e in example)
            return mlp_losses(x, inputs, targets, self.problem.layers, remat)[0]
        return rosenbrock(x + example[0], remat)


def build(problem: Problem, dtype: str = "float64") -> Model:
    """Bind ``problem`` to JAX arrays; float64 needs ``jax.enable_x64(True)`` around all use."""

    def a(v: np.ndarray) -> Array:
        return jnp.asarray(v, dtype=DTYPES[dtype])

    return Model(problem, *problem.arrays(a))


# ---- the transformations ------------------------------------------------------------------------


def transform(model: Model, name: str) -> tuple[Callable[..., Any], tuple[Array, ...]]:
    """``(fn, args)``: ``fn(*args)`` computes transformation ``name`` (a pure array function)."""
    x, ex = model.x, model.examples
    if name == "grad":

        def value_and_grad(x: Array) -> Array:
            value, g = jax.value_and_grad(model.scalar)(x)
            return jnp.concatenate([value[None], g])

        return value_and_grad, (x,)
    if name == "jvp":
        return (lambda x, t: jax.jvp(model.vector, (x,), (t,))[1]), (x, model.tangent)
    if name == "vjp":

        def pull_back(x: Array, u: Array) -> Array:
            _, pullback = jax.vjp(model.vector, x)
            cotangents: tuple[Array, ...] = pullback(u)
            return cotangents[0]

        return pull_back, (x, model.cotangent)
    if name == "jacfwd":
        return jax.jacfwd(model.vector), (x,)
    if name == "jacrev":
        return jax.jacrev(model.vector), (x,)
    if name == "hessian":
        return jax.hessian(model.scalar), (x,)
    if name == "hvp":
        return (lambda x, t: jax.jvp(jax.grad(model.scalar), (x,), (t,))[1]), (x, model.tangent)
    if name == "per_example_grad":
        return jax.vmap(jax.grad(model.example), in_axes=(None, *[0] * len(ex))), (x, *ex)
    if name == "checkpoint":
        return jax.grad(lambda x: model.scalar(x, remat=True)), (x,)
    if name == "per_example_checkpoint":

        def loss(x: Array, *example: Array) -> Array:
            return model.example(x, *example, remat=True)

        return jax.vmap(jax.grad(loss), in_axes=(None, *[0] * len(ex))), (x, *ex)
    raise KeyError(name)


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit(fn)``."""
    return jax.jit(fn)


def to_numpy(out: Array) -> np.ndarray:
    """``out`` as a float64 NumPy array (waits for it)."""
    return np.asarray(out, dtype=np.float64)


def sync(out: Any) -> None:
    """Wait until ``out`` is computed (JAX dispatches asynchronously)."""
    jax.block_until_ready(out)  # type: ignore[no-untyped-call]  # jax leaves it unannotated


def evaluators(model: Model) -> dict[str, Callable[..., Any]]:
    """NumPy-in, NumPy-out forward functions (and the AD gradient) for finite differences.

    They are jitted: finite differences need hundreds of evaluations and op-by-op dispatch
    would make them slow; jit changes no derivative (none is taken but ``grad``'s own).
    """
    dtype = model.x.dtype
    scalar_fn = jax.jit(model.scalar)
    vector_fn = jax.jit(model.vector)
    example_fn = jax.jit(model.example)
    grad_fn = jax.jit(jax.grad(model.scalar))

    def a(v: np.ndarray) -> Array:
        return jnp.asarray(v, dtype=dtype)

    def example(x: np.ndarray, i: int) -> float:
        return float(example_fn(a(x), *(e[i] for e in model.examples)))

    return {
        "scalar": lambda x: float(scalar_fn(a(x))),
        "vector": lambda x: to_numpy(vector_fn(a(x))),
        "example": example,
        "grad": lambda x: to_numpy(grad_fn(a(x))),
    }


def float64() -> contextlib.AbstractContextManager[Any]:
    """Context in which float64 arrays stay float64 (JAX is float32-only by default)."""
    context: contextlib.AbstractContextManager[Any] = jax.enable_x64(True)
    return context


def configure(threads: int) -> None:
    """XLA's pool is sized from the environment (``thread_environment``) and CPU affinity."""


# ---- memory: gradient of a deep MLP with and without checkpointing ------------------------------


def memory_step(
    problem: Problem, remat: bool
) -> tuple[Callable[[], Any], Callable[[], dict[str, Any]]]:
    """A jitted float32 gradient step of ``problem`` (an MLP) and XLA's own memory accounting.

    The accounting is the compiled executable's temporary buffer size
    (``compiled.memory_analysis().temp_size_in_bytes``): where activations kept for the
    backward pass live once XLA has scheduled (and possibly rematerialised) the program.
    """
    model = build(problem, "float32")
    grad_fn = jax.jit(jax.grad(lambda x: model.scalar(x, remat=remat)))
    compiled = grad_fn.lower(model.x).compile()

    def step() -> Array:
        out: Array = compiled(model.x)
        return out

    def accounting() -> dict[str, Any]:
        analysis = compiled.memory_analysis()
        temp = None if analysis is None else int(analysis.temp_size_in_bytes)
        return {"method": "XLA compiled.memory_analysis() temp_size_in_bytes", "bytes": temp}

    return step, accounting
