"""``lstm`` in JAX with Flax NNX: stacked LSTM layers, each one ``jax.lax.scan`` → Linear.

Each layer projects the whole input sequence at once and scans only the recurrence ``h @ W_h``
(`twinbench.workloads._forecaster_jax`); the gates are in torch's order i, f, g, o.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from twinbench.workloads._forecaster_jax import (
    Forecaster,
    RecurrentLayer,
    forward,
    loss_fn,
    stacked,
)

__all__ = ["build", "forward", "loss_fn"]

State = tuple[jax.Array, jax.Array]  # (h, c), each (B, H)


class LSTMLayer(RecurrentLayer[State]):
    gates = 4  # i, f, g, o

    def start(self, h0: jax.Array) -> State:
        return h0, h0

    def step(
        self, carry: State, x_t: jax.Array, w_h: jax.Array, b_h: jax.Array
    ) -> tuple[State, jax.Array]:
        h, c = carry
        i, f, g, o = jnp.split(x_t + (h @ w_h + b_h), 4, axis=-1)  # each (B, H)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


def build(config: Mapping[str, Any]) -> Forecaster:
    return stacked("lstm", LSTMLayer, config)
