"""``mlp`` in JAX with Flax NNX: Linear → ReLU → … → Linear."""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class MLP(nnx.Module):
    def __init__(self, features: Sequence[int], task: str, *, rngs: nnx.Rngs) -> None:
        self.task = task
        self.layers = nnx.List(
            [
                nnx.Linear(d_in, d_out, rngs=rngs)
                for d_in, d_out in zip(features[:-1], features[1:], strict=True)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, d_in) -> (B, d_out)
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def build(config: Mapping[str, Any]) -> MLP:
    return MLP(config["features"], config["task"], rngs=nnx.Rngs(0))


def forward(model: MLP, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: MLP, batch: dict[str, jax.Array]) -> jax.Array:
    out = model(batch["x"])
    if model.task == "classify":
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, batch["y"]))
    return jnp.mean((out - batch["y"]) ** 2)
