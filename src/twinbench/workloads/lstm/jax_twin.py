"""``lstm`` in JAX with Flax NNX: stacked LSTM layers, each one ``jax.lax.scan`` → Linear.

Each layer projects the whole input sequence at once (one big matmul, outside the loop) and
scans only the recurrence ``h @ W_h``. Both of torch's biases are kept (``dense_i.bias`` = b_ih,
``dense_h.bias`` = b_hh) and the gates are in torch's order i, f, g, o.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


class LSTMLayer(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.dense_i = nnx.Linear(d_in, 4 * hidden, rngs=rngs)
        self.dense_h = nnx.Linear(hidden, 4 * hidden, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, in) -> (B, T, H)
        xs = jnp.swapaxes(self.dense_i(x), 0, 1)  # (T, B, 4H): time-major for the scan
        assert self.dense_h.bias is not None  # built with a bias: torch's b_hh
        w_h, b_h = self.dense_h.kernel[...], self.dense_h.bias[...][None, :]  # (H, 4H), (1, 4H)
        h0 = jnp.zeros((x.shape[0], w_h.shape[0]), xs.dtype)

        def step(carry: tuple[jax.Array, jax.Array], x_t: jax.Array) -> Any:
            h, c = carry
            i, f, g, o = jnp.split(x_t + (h @ w_h + b_h), 4, axis=-1)  # each (B, H)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        _, hs = jax.lax.scan(step, (h0, h0), xs)  # (T, B, H)
        return jnp.swapaxes(hs, 0, 1)


class Forecaster(nnx.Module):
    def __init__(
        self, features: int, hidden: int, layers: int, horizon: int, *, rngs: nnx.Rngs
    ) -> None:
        self.lstm = nnx.List(
            [LSTMLayer(features if k == 0 else hidden, hidden, rngs=rngs) for k in range(layers)]
        )
        self.head = nnx.Linear(hidden, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, features) -> (B, horizon)
        for layer in self.lstm:
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
