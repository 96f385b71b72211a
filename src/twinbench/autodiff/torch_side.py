"""PyTorch's idiom for every transformation: ``torch.func`` plus ``torch.utils.checkpoint``.

Functions are pure functions of a flat parameter tensor ``x`` (the ``torch.func`` style), so the
same model is differentiated by grad, jvp, vjp, jacobians, hessian and vmap. Checkpointing uses
``torch.autograd.grad``: ``torch.func`` transforms refuse the saved-tensor hooks that
``torch.utils.checkpoint`` relies on, which the ``per_example_checkpoint`` row records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, vjp, vmap
from torch.utils.checkpoint import checkpoint

from twinbench.autodiff.functions import Problem, mlp_param_shapes, segments

NAME = "torch"
# How each transformation is obtained: "native" (one API call) or "composed" (several).
HOW = {
    "grad": ("native", "torch.func.grad_and_value"),
    "jvp": ("native", "torch.func.jvp"),
    "vjp": ("native", "torch.func.vjp"),
    "jacfwd": ("native", "torch.func.jacfwd"),
    "jacrev": ("native", "torch.func.jacrev"),
    "hessian": ("native", "torch.func.hessian"),
    "hvp": ("composed", "torch.func.jvp(torch.func.grad(f))"),
    "per_example_grad": ("composed", "torch.func.vmap(torch.func.grad(f))"),
    "checkpoint": ("native", "torch.utils.checkpoint + torch.autograd.grad"),
    "per_example_checkpoint": ("composed", "torch.func.vmap(torch.func.grad(checkpointed f))"),
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}

Tensor = torch.Tensor


# ---- the functions ------------------------------------------------------------------------------


def unpack(x: Tensor, layers: tuple[int, ...]) -> list[tuple[Tensor, Tensor]]:
    """Split the flat parameters into (W, b) per layer, W (fan_in, fan_out)."""
    params, start = [], 0
    for w_shape, (b_size,) in mlp_param_shapes(layers):
        w_size = w_shape[0] * w_shape[1]
        params.append((x[start : start + w_size].view(w_shape), x[start + w_size :][:b_size]))
        start += w_size + b_size
    return params


def _hidden(h: Tensor, *params: Tensor) -> Tensor:
    """Hidden layers ``params = (W1, b1, W2, b2, …)`` applied in turn: tanh(h @ W + b)."""
    for w, b in zip(params[::2], params[1::2], strict=True):
        h = torch.tanh(h @ w + b)
    return h


def mlp(x: Tensor, inputs: Tensor, layers: tuple[int, ...], remat: bool = False) -> Tensor:
    """(B, in) -> (B, out); with ``remat`` each segment of hidden layers is checkpointed."""
    *hidden, (w_out, b_out) = unpack(x, layers)
    h = inputs
    for segment in segments(len(hidden)):
        params = [p for i in segment for p in hidden[i]]
        h = checkpoint(_hidden, h, *params, use_reentrant=False) if remat else _hidden(h, *params)
    return h @ w_out + b_out


def mlp_losses(
    x: Tensor, inputs: Tensor, targets: Tensor, layers: tuple[int, ...], remat: bool = False
) -> Tensor:
    """Per-example squared errors, (B,)."""
    return 0.5 * (mlp(x, inputs, layers, remat) - targets).pow(2).sum(-1)


def rosenbrock_residuals(x: Tensor) -> Tensor:
    """(2(n-1),): rosenbrock(x) is the sum of their squares."""
    return torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def rosenbrock(x: Tensor, remat: bool = False) -> Tensor:
    residuals: Tensor = (
        checkpoint(rosenbrock_residuals, x, use_reentrant=False)
        if remat
        else rosenbrock_residuals(x)
    )
    return residuals.pow(2).sum()


@dataclass
class Model:
    """One problem bound to tensors: the three views of ``functions`` as torch functions."""

    problem: Problem
    x: Tensor
    tangent: Tensor
    cotangent: Tensor
    examples: tuple[Tensor, ...]

    def vector(self, x: Tensor) -> Tensor:
        if self.problem.name == "mlp":
            inputs, targets = self.examples
            return mlp_losses(x, inputs, targets, self.problem.layers)
        return rosenbrock_residuals(x)

    def scalar(self, x: Tensor, remat: bool = False) -> Tensor:
        if self.problem.name == "mlp":
            inputs, targets = self.examples
            return mlp_losses(x, inputs, targets, self.problem.layers, remat).mean()
        return rosenbrock(x, remat)

    def example(self, x: Tensor, *example: Tensor, remat: bool = False) -> Tensor:
        """Loss of one example; ``example`` holds unbatched slices of ``self.examples``."""
        if self.problem.name == "mlp":
            inputs, targets = (e.unsqueeze(0) for e in example)
            return mlp_losses(x, inputs, targets, self.problem.layers, remat)[0]
        return rosenbrock(x + example[0], remat)


def build(problem: Problem, dtype: str = "float64") -> Model:
    def t(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=DTYPES[dtype])

    return Model(problem, *problem.arrays(t))


# ---- the transformations ------------------------------------------------------------------------


def transform(model: Model, name: str) -> tuple[Callable[..., Any], tuple[Tensor, ...]]:
    """``(fn, args)``: ``fn(*args)`` computes transformation ``name`` (a pure tensor function)."""
    x, ex = model.x, model.examples
    if name == "grad":

        def value_and_grad(x: Tensor) -> Tensor:
            g, value = grad_and_value(model.scalar)(x)
            return torch.cat([value.reshape(1), g])

        return value_and_grad, (x,)
    if name == "jvp":
        return (lambda x, t: jvp(model.vector, (x,), (t,))[1]), (x, model.tangent)
    if name == "vjp":

        def pull_back(x: Tensor, u: Tensor) -> Tensor:
            pullback = vjp(model.vector, x)[1]
            cotangents: tuple[Tensor, ...] = pullback(u)
            return cotangents[0]

        return pull_back, (x, model.cotangent)
    if name == "jacfwd":
        return jacfwd(model.vector), (x,)
    if name == "jacrev":
        return jacrev(model.vector), (x,)
    if name == "hessian":
        return hessian(model.scalar), (x,)
    if name == "hvp":
        return (lambda x, t: jvp(grad(model.scalar), (x,), (t,))[1]), (x, model.tangent)
    if name == "per_example_grad":
        return vmap(grad(model.example), in_dims=(None, *[0] * len(ex))), (x, *ex)
    if name == "checkpoint":

        def checkpointed_grad(x: Tensor) -> Tensor:
            x = x.detach().requires_grad_(True)
            return torch.autograd.grad(model.scalar(x, remat=True), x)[0]

        return checkpointed_grad, (x,)
    if name == "per_example_checkpoint":

        def loss(x: Tensor, *example: Tensor) -> Tensor:
            return model.example(x, *example, remat=True)

        return vmap(grad(loss), in_dims=(None, *[0] * len(ex))), (x, *ex)
    raise KeyError(name)


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile(fn)`` after a reset, so each cell compiles afresh (no recompile limits)."""
    torch.compiler.reset()
    return torch.compile(fn)


def to_numpy(out: Tensor) -> np.ndarray:
    """``out`` as a float64 NumPy array."""
    array: np.ndarray = out.detach().cpu().numpy().astype(np.float64)
    return array


def sync(out: Any) -> None:
    """CPU tensors are ready when the call returns (no asynchronous dispatch)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def evaluators(model: Model) -> dict[str, Callable[..., Any]]:
    """NumPy-in, NumPy-out forward functions (and the AD gradient) for finite differences."""

    def t(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=model.x.dtype)

    def example(x: np.ndarray, i: int) -> float:
        with torch.no_grad():
            return float(model.example(t(x), *(e[i] for e in model.examples)))

    def gradient(x: np.ndarray) -> np.ndarray:
        return to_numpy(grad(model.scalar)(t(x)))

    def scalar(x: np.ndarray) -> float:
        with torch.no_grad():
            return float(model.scalar(t(x)))

    def vector(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return to_numpy(model.vector(t(x)))

    return {"scalar": scalar, "vector": vector, "example": example, "grad": gradient}


def float64() -> contextlib.AbstractContextManager[Any]:
    """Context in which ``build(..., "float64")`` works: nothing to switch on in PyTorch."""
    return contextlib.nullcontext()


def configure(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)


# ---- memory: gradient of a deep MLP with and without checkpointing ------------------------------


def memory_step(
    problem: Problem, remat: bool
) -> tuple[Callable[[], Any], Callable[[], dict[str, Any]]]:
    """A float32 gradient step of ``problem`` (an MLP) and its own memory accounting.

    The accounting counts the bytes autograd saves for backward (``saved_tensors_hooks``),
    which is exactly what checkpointing trades for recomputation.
    """
    model = build(problem, "float32")
    x = model.x.clone().requires_grad_(True)

    def step() -> Tensor:
        return torch.autograd.grad(model.scalar(x, remat=remat), x)[0]

    def accounting() -> dict[str, Any]:
        saved = 0

        def pack(tensor: Tensor) -> Tensor:
            nonlocal saved
            saved += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = model.scalar(x, remat=remat)
        torch.autograd.grad(loss, x)
        return {"method": "torch saved_tensors_hooks (bytes saved for backward)", "bytes": saved}

    return step, accounting
