"""``lstm`` in JAX with Flax NNX: stacked LSTM layers, each one ``jax.lax.scan`` → Linear.

Each layer projects the whole input sequence at once and scans only the recurrence ``h @ W_h``
(`twinbench.workloads._forecaster_jax`); the gates are in torch's order i, f, g, o.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from twinbench.workloads._forecaster_jax import (
    Forecaster,
    RecurrentLayer,
    forward,
    loss_fn,
    scan_over_time,
    stacked,
)

__all__ = ["build", "forward", "loss_fn"]


class LSTMLayer(RecurrentLayer):
    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        super().__init__(d_in, hidden, gates=4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, in) -> (B, T, H)
        xs = self.dense_i(x)  # (B, T, 4H)
        w_h, b_h = self.recurrence()  # (H, 4H), (1, 4H)
        h0 = jnp.zeros((x.shape[0], w_h.shape[0]), xs.dtype)

        def step(
            carry: tuple[jax.Array, jax.Array], x_t: jax.Array
        ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
            h, c = carry
            i, f, g, o = jnp.split(x_t + (h @ w_h + b_h), 4, axis=-1)  # each (B, H)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        return scan_over_time(step, (h0, h0), xs)


def build(config: Mapping[str, Any]) -> Forecaster:
    return stacked("lstm", LSTMLayer, config)
