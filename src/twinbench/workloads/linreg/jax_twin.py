"""``linreg`` in JAX with Flax NNX: one Linear layer, mean squared error."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


class LinearRegression(nnx.Module):
    def __init__(self, features: int, *, rngs: nnx.Rngs) -> None:
        self.linear = nnx.Linear(features, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, features) -> (N, 1)
        return self.linear(x)


def build(config: Mapping[str, Any]) -> LinearRegression:
    return LinearRegression(config["features"], rngs=nnx.Rngs(0))


def forward(model: LinearRegression, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: LinearRegression, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
