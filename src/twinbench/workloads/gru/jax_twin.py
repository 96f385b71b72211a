"""``gru`` in JAX with Flax NNX: stacked GRU layers, each one ``jax.lax.scan`` → Linear.

The cell is written here rather than taken from ``nnx.GRUCell``, which has no hidden bias and so
cannot hold torch's ``b_hn``: with gates r, z, n in torch's order,

    r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

Each layer projects the whole input sequence at once and scans only the recurrence
``h @ W_h + b_h`` (`twinbench.workloads._forecaster_jax`).
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


class GRULayer(RecurrentLayer[jax.Array]):
    gates = 3  # r, z, n; b_hh = [b_hr, b_hz, b_hn]

    def start(self, h0: jax.Array) -> jax.Array:
        return h0

    def step(
        self, h: jax.Array, x_t: jax.Array, w_h: jax.Array, b_h: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        x_r, x_z, x_n = jnp.split(x_t, 3, axis=-1)  # each (B, H)
        h_r, h_z, h_n = jnp.split(h @ w_h + b_h, 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)  # b_hn sits inside the reset gate's product
        h = n + z * (h - n)  # = (1 − z) ⊙ n + z ⊙ h, one product fewer (torch's form)
        return h, h


def build(config: Mapping[str, Any]) -> Forecaster:
    return stacked("gru", GRULayer, config)
