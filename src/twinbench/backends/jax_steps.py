"""A JAX training step, as each side that trains a twin writes it: eager on the stateful NNX
objects, or pure over their split state for ``jax.jit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from twinbench.backends.jax_backend import ModelState

JaxBatch = dict[str, jax.Array]


def eager_train_step(
    loss_fn: Callable[[Any, JaxBatch], jax.Array], model: nnx.Module, optimizer: nnx.Optimizer[Any]
) -> Callable[[JaxBatch], jax.Array]:
    """One optimizer step on the stateful NNX objects, op by op; returns the loss
    (``loss_fn(model, batch)``: a twin's, or a loss built from it)."""

    def step(batch: JaxBatch) -> jax.Array:
        loss: jax.Array
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return loss

    return step


def pure_train_step(
    loss_fn: Callable[[Any, JaxBatch], jax.Array], graphdef: nnx.GraphDef[Any]
) -> Callable[[ModelState, JaxBatch], tuple[ModelState, jax.Array]]:
    """The same step as a pure function of the split ``(model, optimizer)`` state, for
    ``jax.jit``: returns the new state and the loss."""

    def step(state: ModelState, batch: JaxBatch) -> tuple[ModelState, jax.Array]:
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    return step
