"""The autodiff suite's problems, framework-neutral: names, sizes and seeded NumPy data.

Every problem is a function of one flat parameter vector ``x`` of length ``n`` (both twins unpack
it the same way), with three views that the transformations differentiate:

- ``scalar(x)``: a scalar loss (grad, hessian, hvp, checkpoint);
- ``vector(x)``: a vector of ``m`` outputs whose mean (MLP) or sum of squares (Rosenbrock) is the
  scalar (jvp, vjp, jacfwd, jacrev);
- ``example(x, e)``: the loss of one example ``e`` of a batch (per-example gradients).

``mlp``: a tanh MLP with squared-error loss; ``vector`` holds the per-example losses, so its
Jacobian rows are the per-example gradients. ``rosenbrock``: the n-dimensional Rosenbrock function
``sum(100 (x[i+1] - x[i]²)² + (1 - x[i])²)`` written as a sum of squared residuals; an "example"
is an offset ``d`` and ``example(x, d) = rosenbrock(x + d)`` (the gradient at B nearby points).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from twinbench.validation import in_range, one_of, positive

Array = npt.NDArray[np.float64]
T = TypeVar("T")  # one framework's array type

FUNCTIONS = ("mlp", "rosenbrock")
TRANSFORMS = (
    "grad",  # value and gradient of the scalar loss
    "jvp",  # J t, forward mode
    "vjp",  # uᵀ J, reverse mode
    "jacfwd",  # full Jacobian by forward mode
    "jacrev",  # full Jacobian by reverse mode
    "hessian",  # full Hessian of the scalar loss
    "hvp",  # Hessian-vector product, forward-over-reverse
    "per_example_grad",  # vmap(grad): one gradient per example
    "checkpoint",  # gradient with rematerialised (checkpointed) layers
    "per_example_checkpoint",  # vmap(grad) of a checkpointed loss: a composition
)
SECOND_ORDER = ("hessian", "hvp")
MIN_DIM = 2  # Rosenbrock couples neighbouring coordinates
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: Rosenbrock's dimension and the MLP's hidden width and batch."""

    dim: int = 128
    hidden: int = 32
    batch: int = 32
    mlp_in: int = 8
    mlp_out: int = 4
    mlp_hidden_layers: int = 2

    def __post_init__(self) -> None:
        for name in ("hidden", "batch", "mlp_in", "mlp_out", "mlp_hidden_layers"):
            positive(name, getattr(self, name), integer=True)
        in_range("dim", self.dim, low=MIN_DIM, integer=True)

    @property
    def mlp_layers(self) -> tuple[int, ...]:
        return (self.mlp_in, *([self.hidden] * self.mlp_hidden_layers), self.mlp_out)


CHECK_SIZES = Sizes(dim=6, hidden=8, batch=5, mlp_in=4, mlp_out=3)  # finite differences: small
QUICK_CHECK_SIZES = Sizes(dim=4, hidden=5, batch=3, mlp_in=3, mlp_out=2, mlp_hidden_layers=1)
TIMING_SIZES = Sizes()
QUICK_TIMING_SIZES = Sizes(dim=16, hidden=8, batch=8, mlp_in=4, mlp_out=2)


@dataclass(frozen=True)
class Problem:
    """One function at one size, with everything both twins need, as float64 NumPy arrays."""

    name: str
    x: Array  # (n,) the point where derivatives are taken
    tangent: Array  # (n,) for jvp and hvp
    cotangent: Array  # (m,) for vjp
    examples: tuple[Array, ...]  # per-example data, each with leading axis B
    layers: tuple[int, ...] = ()  # MLP layer widths; empty for Rosenbrock

    @property
    def n(self) -> int:
        return int(self.x.size)

    @property
    def m(self) -> int:
        return int(self.cotangent.size)

    @property
    def batch(self) -> int:
        return int(self.examples[0].shape[0])

    def arrays(self, convert: Callable[[Array], T]) -> tuple[T, T, T, tuple[T, ...]]:
        """``x``, ``tangent``, ``cotangent`` and ``examples``, each through ``convert`` (to one
        framework's arrays)."""
        examples = tuple(convert(e) for e in self.examples)
        return convert(self.x), convert(self.tangent), convert(self.cotangent), examples


def mlp_param_shapes(layers: tuple[int, ...]) -> list[tuple[tuple[int, int], tuple[int]]]:
    """(W, b) shapes per layer; W is (fan_in, fan_out) so a layer is ``h @ W + b``."""
    return [((a, b), (b,)) for a, b in zip(layers[:-1], layers[1:], strict=True)]


def mlp_param_count(layers: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:], strict=True))


def mlp_init(layers: tuple[int, ...], rng: np.random.Generator) -> Array:
    """Flat parameters, layer by layer ``[W.ravel(), b]``; Glorot-normal W, small random b."""
    parts: list[Array] = []
    for (fan_in, fan_out), _ in mlp_param_shapes(layers):
        parts.append(rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out)).ravel())
        parts.append(rng.normal(0.0, 0.1, fan_out))
    return np.concatenate(parts)


def make_problem(
    name: str, sizes: Sizes, *, batch: int | None = None, seed: int = DEFAULT_SEED
) -> Problem:
    """The problem ``name`` at ``sizes`` (``batch`` overrides the number of examples)."""
    one_of("function", [name], FUNCTIONS)
    batch = int(positive("batch", batch if batch is not None else sizes.batch, integer=True))
    rng = np.random.default_rng([seed, FUNCTIONS.index(name)])
    if name == "mlp":
        layers = sizes.mlp_layers
        x = mlp_init(layers, rng)
        inputs = rng.normal(size=(batch, layers[0]))
        targets = rng.normal(size=(batch, layers[-1]))
        return Problem(
            name, x, rng.normal(size=x.size), rng.normal(size=batch), (inputs, targets), layers
        )
    n = sizes.dim
    # Start away from the minimum at (1, …, 1) so no derivative is near zero.
    x = rng.uniform(-1.5, 1.5, n)
    offsets = rng.normal(0.0, 0.1, (batch, n))
    return Problem(name, x, rng.normal(size=n), rng.normal(size=2 * (n - 1)), (offsets,))


def segments(hidden_layers: int) -> list[range]:
    """Hidden layers grouped for checkpointing: ⌈√L⌉ layers per segment (Chen et al. 2016).

    Only each segment's input is kept for the backward pass; a segment's inner activations are
    recomputed. Checkpointing single tanh layers would save nothing: a layer's input is all its
    backward pass needs, and that is stored either way.
    """
    size = max(1, math.ceil(math.sqrt(hidden_layers)))
    return [range(i, min(i + size, hidden_layers)) for i in range(0, hidden_layers, size)]


def make_deep_mlp(depth: int, width: int, batch: int, *, seed: int = DEFAULT_SEED) -> Problem:
    """The memory experiment's MLP: ``depth`` tanh layers of ``width`` on ``batch`` examples."""
    for name, value in (("depth", depth), ("width", width), ("batch", batch)):
        positive(name, value, integer=True)
    layers = (width, *([width] * depth), width)
    rng = np.random.default_rng([seed, len(FUNCTIONS)])
    x = mlp_init(layers, rng)
    inputs = rng.normal(size=(batch, width))
    targets = rng.normal(size=(batch, width))
    return Problem("mlp", x, np.zeros_like(x), np.zeros(batch), (inputs, targets), layers)
