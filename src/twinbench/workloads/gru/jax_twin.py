"""``gru`` in JAX with Flax NNX: stacked GRU layers, each one ``jax.lax.scan`` → Linear.

The cell is written here rather than taken from ``nnx.GRUCell``, which has no hidden bias and so
cannot hold torch's ``b_hn``: with gates r, z, n in torch's order,

    r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

Each layer projects the whole input sequence at once (one big matmul, outside the loop) and
scans only the recurrence ``h @ W_h + b_h``.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


class GRULayer(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.dense_i = nnx.Linear(d_in, 3 * hidden, rngs=rngs)  # b_ih
        self.dense_h = nnx.Linear(hidden, 3 * hidden, rngs=rngs)  # b_hh = [b_hr, b_hz, b_hn]

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, in) -> (B, T, H)
        xs = jnp.swapaxes(self.dense_i(x), 0, 1)  # (T, B, 3H): time-major for the scan
        assert self.dense_h.bias is not None  # built with a bias: torch's b_hh
        w_h, b_h = self.dense_h.kernel[...], self.dense_h.bias[...][None, :]  # (H, 3H), (1, 3H)
        h0 = jnp.zeros((x.shape[0], w_h.shape[0]), xs.dtype)

        def step(h: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
            x_r, x_z, x_n = jnp.split(x_t, 3, axis=-1)  # each (B, H)
            h_r, h_z, h_n = jnp.split(h @ w_h + b_h, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)  # b_hn sits inside the reset gate's product
            h = n + z * (h - n)  # = (1 − z) ⊙ n + z ⊙ h, one product fewer (torch's form)
            return h, h

        _, hs = jax.lax.scan(step, h0, xs)  # (T, B, H)
        return jnp.swapaxes(hs, 0, 1)


class Forecaster(nnx.Module):
    def __init__(
        self, features: int, hidden: int, layers: int, horizon: int, *, rngs: nnx.Rngs
    ) -> None:
        self.gru = nnx.List(
            [GRULayer(features if k == 0 else hidden, hidden, rngs=rngs) for k in range(layers)]
        )
        self.head = nnx.Linear(hidden, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, features) -> (B, horizon)
        for layer in self.gru:
            x = layer(x)
        return self.head(x[:, -1])


def build(config: Mapping[str, Any]) -> Forecaster:
    return Forecaster(
        config["features"], config["hidden"], config["layers"], config["horizon"], rngs=nnx.Rngs(0)
    )


def forward(model: Forecaster, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: Forecaster, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
