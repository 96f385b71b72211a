"""``xor`` in JAX with Flax NNX: Linear → tanh → Linear, BCE on the logits."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class XorNet(nnx.Module):
    def __init__(self, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(2, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, 2) -> logits (N, 1)
        return self.out(nnx.tanh(self.hidden(x)))


def build(config: Mapping[str, Any]) -> XorNet:
    return XorNet(config["hidden"], rngs=nnx.Rngs(0))


def forward(model: XorNet, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: XorNet, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean(optax.sigmoid_binary_cross_entropy(forward(model, batch), batch["y"]))
