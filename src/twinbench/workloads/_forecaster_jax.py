"""The JAX side of ``lstm`` and ``gru``: recurrent layers, each one ``jax.lax.scan``, → Linear.

A `RecurrentLayer` projects the whole input sequence at once (``dense_i``: one big matmul, outside
the loop) and scans only the recurrence through ``dense_h``; each twin's layer writes its cell's
``step``. Both of torch's biases are kept (``dense_i.bias`` = b_ih, ``dense_h.bias`` = b_hh) and
the gates are in torch's order. `Forecaster` keeps the layers under the workload's name, so
canonical names read ``lstm.0.dense_i.kernel``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

Carry = TypeVar("Carry")  # what the scan carries from step to step: h, or (h, c)


class RecurrentLayer(nnx.Module, Generic[Carry]):
    gates: int  # gate blocks per step: a subclass sets it

    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.dense_i = nnx.Linear(d_in, self.gates * hidden, rngs=rngs)  # b_ih
        self.dense_h = nnx.Linear(hidden, self.gates * hidden, rngs=rngs)  # b_hh

    def start(self, h0: jax.Array) -> Carry:
        """The carry before the first step, from the zero hidden state ``h0`` (B, H)."""
        raise NotImplementedError

    def step(
        self, carry: Carry, x_t: jax.Array, w_h: jax.Array, b_h: jax.Array
    ) -> tuple[Carry, jax.Array]:
        """One time step: ``x_t`` (B, G·H) is this step's input projection; returns the next
        carry and the hidden state (B, H)."""
        raise NotImplementedError

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, in) -> (B, T, H)
        xs = jnp.swapaxes(self.dense_i(x), 0, 1)  # (T, B, G·H): time-major for the scan
        assert self.dense_h.bias is not None  # built with a bias: torch's b_hh
        w_h, b_h = self.dense_h.kernel[...], self.dense_h.bias[...][None, :]  # (H, G·H), (1, G·H)
        h0 = jnp.zeros((x.shape[0], w_h.shape[0]), xs.dtype)

        def step(carry: Carry, x_t: jax.Array) -> tuple[Carry, jax.Array]:
            return self.step(carry, x_t, w_h, b_h)

        _, hs = jax.lax.scan(step, self.start(h0), xs)  # (T, B, H)
        return jnp.swapaxes(hs, 0, 1)


class Forecaster(nnx.Module):
    def __init__(
        self, name: str, layers: Sequence[RecurrentLayer[Any]], horizon: int, *, rngs: nnx.Rngs
    ) -> None:
        self.stack_name = name
        setattr(self, name, nnx.List(layers))
        self.head = nnx.Linear(layers[-1].dense_h.in_features, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, features) -> (B, horizon)
        for layer in getattr(self, self.stack_name):
            x = layer(x)
        return self.head(x[:, -1])


def stacked(
    name: str, layer: Callable[..., RecurrentLayer[Any]], config: Mapping[str, Any]
) -> Forecaster:
    """The config's forecaster: ``layers`` of ``layer(d_in, hidden, rngs=...)``, under ``name``."""
    rngs = nnx.Rngs(0)
    features, hidden = config["features"], config["hidden"]
    layers = [
        layer(features if k == 0 else hidden, hidden, rngs=rngs) for k in range(config["layers"])
    ]
    return Forecaster(name, layers, config["horizon"], rngs=rngs)


def forward(model: Forecaster, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: Forecaster, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
