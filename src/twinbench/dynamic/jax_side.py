"""JAX's ways through a schedule of changing shapes: jit per shape, jit on padded shapes, op by op.

The training step is the one a JAX user writes: one pure function over the split NNX state —
loss, gradients, optimizer update — under ``jax.jit``, which traces and compiles it once per
distinct input shape and then reuses the executable. Padding to buckets (or to the longest
length) bounds the distinct shapes; the masked loss keeps padding out of the result. Op by op
runs the same step on the stateful NNX objects without jit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.jax_backend import load_canonical, make_tx, to_device
from twinbench.backends.jax_steps import eager_train_step, pure_train_step
from twinbench.dynamic.counters import JaxCompileCounter
from twinbench.dynamic.settings import Strategy, TrainerOptions
from twinbench.spec import Batch, Size, Workload

NAME = "jax"


def configure(_threads: int) -> None:
    """XLA sizes its pools from the CPU affinity the worker pinned; float32 matmuls in full."""
    jax.config.update("jax_default_matmul_precision", "highest")  # type: ignore[no-untyped-call]


Loss = Callable[[nnx.Module, dict[str, jax.Array]], jax.Array]


def masked_loss(workload: Workload, *, leak_padding: bool) -> Loss:
    """The training loss over the real positions only (``leak_padding``: over all of them, the
    planted mask bug); a workload without a mask trains on its twin's own loss."""
    twin = workload.twin("jax")

    def loss(model: nnx.Module, batch: dict[str, jax.Array]) -> jax.Array:
        if "mask" not in batch:
            plain: jax.Array = twin.loss_fn(model, batch)
            return plain
        if "tokens" in batch:
            logits = twin.forward(model, {"tokens": batch["tokens"]})  # (B, T, vocab)
            per_item = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        else:  # rows: the mlp's mean squared error or cross-entropy, per row
            outputs = twin.forward(model, {"x": batch["x"]})
            y = batch["y"]
            if jnp.issubdtype(y.dtype, jnp.floating):
                per_item = jnp.mean(jnp.square(outputs - y).reshape(y.shape[0], -1), axis=1)
            else:
                per_item = optax.softmax_cross_entropy_with_integer_labels(outputs, y)
        if leak_padding:
            return jnp.mean(per_item)
        return jnp.sum(per_item * batch["mask"]) / jnp.sum(batch["mask"])

    return loss


class Trainer:
    """A model, its optimizer and one strategy's training step."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        # XLA is JAX's only compiler, and jit needs no word on what varies: backend and axis unused
        self.counter = JaxCompileCounter()
        model = workload.twin("jax").build(size.config)
        load_canonical(model, initial_weights(workload, size, options["seed"], framework="jax"))
        model.train()
        optimizer = nnx.Optimizer(
            model, make_tx(workload.optimizers[workload.train_optimizer]), wrt=nnx.Param
        )
        loss_of = masked_loss(workload, leak_padding=options["leak_padding"])
        self._jit = strategy.compile != "none"

        graphdef, self._state = nnx.split((model, optimizer))
        self._eager_step = eager_train_step(loss_of, model, optimizer)
        self._jitted = jax.jit(pure_train_step(loss_of, graphdef), donate_argnums=0)

    def step(self, batch: Batch) -> float:
        """One optimizer step on ``batch``; its loss (a float, so the step has finished)."""
        arrays = to_device(batch, None, jnp.float32)
        if not self._jit:
            return float(self._eager_step(arrays))
        self._state, loss = self._jitted(self._state, arrays)
        return float(loss)

    def extras(self) -> dict[str, Any]:
        """Why jit traced again (it has no graph breaks: it traces or raises)."""
        return {"recompile_reasons": self.counter.recompile_reasons()}
