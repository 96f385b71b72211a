"""JAX's ways through a schedule of changing shapes: jit per shape, jit on padded shapes, op by op.

The training step is the one a JAX user writes: one pure function over the split NNX state —
loss, gradients, optimizer update — under ``jax.jit``, which traces and compiles it once per
distinct input shape and then reuses the executable. Padding to buckets (or to the longest
length) bounds the distinct shapes; the masked loss keeps padding out of the result. Op by op
runs the same step on the stateful NNX objects without jit. Serving (`Inference`) jits the
masked loss alone, forward only, its value the summary of each step's outputs that the suite
compares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.jax_backend import ModelState, load_canonical, make_tx, to_device
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
    """The loss over the real positions or rows only (``leak_padding``: over all of them, or
    the encoder's attention over all of them, the planted mask bug); a workload without a mask
    runs on its twin's own loss."""
    twin = workload.twin("jax")

    def loss(model: nnx.Module, batch: dict[str, jax.Array]) -> jax.Array:
        if "mask" not in batch:
            plain: jax.Array = twin.loss_fn(model, batch)
            return plain
        if "labels" in batch:  # one label per sequence: the twin masks its own attention
            seen = {k: v for k, v in batch.items() if k != "mask"} if leak_padding else batch
            classified: jax.Array = twin.loss_fn(model, seen)
            return classified
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
        mask = batch["mask"]  # (B, T) per position, or (B,) per row: spread over its positions
        mask = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (per_item.ndim - mask.ndim)),
                                per_item.shape)  # fmt: skip
        return jnp.sum(per_item * mask) / jnp.sum(mask)

    return loss


class _Strategy:
    """What the training and the serving step both start from: the model with the canonical
    weights, the masked loss, whether to jit, and a count of jit's compilations."""

    def __init__(
        self,
        workload: Workload,
        size: Size,
        strategy: Strategy,
        *,
        train: bool,
        **options: Unpack[TrainerOptions],
    ) -> None:
        # XLA is JAX's only compiler, and jit needs no word on what varies: backend and axis unused
        self.counter = JaxCompileCounter()
        self._model = workload.twin("jax").build(size.config)
        weights = initial_weights(workload, size, options["seed"], framework="jax")
        load_canonical(self._model, weights)
        if train:
            self._model.train()
        else:
            self._model.eval()
        self._loss_of = masked_loss(workload, leak_padding=options["leak_padding"])
        self._jit = strategy.compile != "none"

    def extras(self) -> dict[str, Any]:
        """Why jit traced again (it has no graph breaks: it traces or raises)."""
        return {"recompile_reasons": self.counter.recompile_reasons()}


class Trainer(_Strategy):
    """A model, its optimizer and one strategy's training step."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        super().__init__(workload, size, strategy, train=True, **options)
        model = self._model
        optimizer = nnx.Optimizer(
            model, make_tx(workload.optimizers[workload.train_optimizer]), wrt=nnx.Param
        )
        graphdef, self._state = nnx.split((model, optimizer))
        self._eager_step = eager_train_step(self._loss_of, model, optimizer)
        self._jitted = jax.jit(pure_train_step(self._loss_of, graphdef), donate_argnums=0)

    def step(self, batch: Batch) -> float:
        """One optimizer step on ``batch``; its loss (a float, so the step has finished)."""
        arrays = to_device(batch, None, jnp.float32)
        if not self._jit:
            return float(self._eager_step(arrays))
        self._state, loss = self._jitted(self._state, arrays)
        return float(loss)


class Inference(_Strategy):
    """A model serving requests: one strategy's forward pass, in eval mode, with no gradients
    (nothing asks for them: the function is the loss, not its ``value_and_grad``)."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        super().__init__(workload, size, strategy, train=False, **options)
        loss_of = self._loss_of
        graphdef, self._state = nnx.split(self._model)

        def forward(state: ModelState, batch: dict[str, jax.Array]) -> jax.Array:
            return loss_of(nnx.merge(graphdef, state), batch)

        self._jitted = jax.jit(forward)

    def step(self, batch: Batch) -> float:
        """The forward pass on ``batch``; its outputs' summary, the loss of the real rows (a
        float, so the step has finished)."""
        arrays = to_device(batch, None, jnp.float32)
        if not self._jit:
            return float(self._loss_of(self._model, arrays))
        return float(self._jitted(self._state, arrays))
