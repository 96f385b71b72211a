"""The JAX side of ``lstm`` and ``gru``: recurrent layers, each one ``jax.lax.scan``, → Linear.

A `RecurrentLayer` projects the whole input sequence at once (``dense_i``: one big matmul, outside
the loop) and scans only the recurrence through ``dense_h``; each twin writes its cell's step.
Both of torch's biases are kept (``dense_i.bias`` = b_ih, ``dense_h.bias`` = b_hh) and the gates
are in torch's order. `Forecaster` keeps the layers under the workload's name, so canonical names
read ``lstm.0.dense_i.kernel``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

Carry = TypeVar("Carry")


class RecurrentLayer(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, gates: int, rngs: nnx.Rngs) -> None:
        self.dense_i = nnx.Linear(d_in, gates * hidden, rngs=rngs)  # b_ih
        self.dense_h = nnx.Linear(hidden, gates * hidden, rngs=rngs)  # b_hh

    def recurrence(self) -> tuple[jax.Array, jax.Array]:
        """``dense_h``'s kernel (H, G·H) and bias (1, G·H), read once, outside the scan."""
        assert self.dense_h.bias is not None  # built with a bias: torch's b_hh
        return self.dense_h.kernel[...], self.dense_h.bias[...][None, :]


def scan_over_time(
    step: Callable[[Carry, jax.Array], tuple[Carry, jax.Array]], carry: Carry, xs: jax.Array
) -> jax.Array:
    """``step``'s outputs (B, T, H) over the time axis of ``xs`` (B, T, G·H), from ``carry``."""
    _, hs = jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))  # time-major for the scan
    return jnp.swapaxes(hs, 0, 1)


class Forecaster(nnx.Module):
    def __init__(
        self, name: str, layers: Sequence[RecurrentLayer], horizon: int, *, rngs: nnx.Rngs
    ) -> None:
        self.stack_name = name
        setattr(self, name, nnx.List(layers))
        self.head = nnx.Linear(layers[-1].dense_h.in_features, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, features) -> (B, horizon)
        for layer in getattr(self, self.stack_name):
            x = layer(x)
        return self.head(x[:, -1])


def stacked(
    name: str, layer: Callable[..., RecurrentLayer], config: Mapping[str, Any]
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
