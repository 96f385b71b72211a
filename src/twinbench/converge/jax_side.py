"""A task's JAX twin trained for time to target: ``jax.jit`` or op-by-op (``jax-eager``).

The twin loads the one canonical init; each step moves the pipeline's NumPy batch to the device
(timed: the pipeline is part of training). Under ``jax-jit`` the whole step — loss, gradients
and optax update — is one jitted function over the split NNX state with its buffers donated,
and the evaluation forward another; both compile on their first call, inside time to target.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.jax_backend import ModelState, load_canonical, make_tx, to_device
from twinbench.backends.jax_steps import eager_train_step, pure_train_step
from twinbench.converge.tasks import Task
from twinbench.spec import Batch

NAME = "jax"


def configure(_threads: int) -> None:
    """XLA's pool is sized from the worker's CPU affinity; fp32 matmuls exact, as torch's."""
    jax.config.update("jax_default_matmul_precision", "highest")  # type: ignore[no-untyped-call]


class Trainer:
    """The model, its optimizer and the two steps a converge run calls."""

    def __init__(self, task: Task, *, seed: int, mode: str) -> None:
        workload = task.workload()
        twin = workload.twin("jax")
        model = twin.build(task.size.config)
        load_canonical(model, initial_weights(workload, task.size, seed, framework="jax"))
        model.train()
        optimizer = nnx.Optimizer(model, make_tx(task.optimizer), wrt=nnx.Param)
        self.jit = mode == "jax-jit"
        self.model, self.optimizer = model, optimizer
        self._device = jax.devices("cpu")[0]
        graphdef, self._state = nnx.split((model, optimizer))

        def pure_predict(state: ModelState, batch: dict[str, jax.Array]) -> jax.Array:
            model, _ = nnx.merge(graphdef, state)
            model.eval()  # BatchNorm normalises with its running statistics
            outputs: jax.Array = twin.forward(model, batch)
            return outputs

        self._twin = twin
        self._eager_step = eager_train_step(twin.loss_fn, model, optimizer)
        self._jit_step = jax.jit(pure_train_step(twin.loss_fn, graphdef), donate_argnums=(0,))
        self._jit_predict = jax.jit(pure_predict)

    def _on_device(self, batch: Batch) -> dict[str, jax.Array]:
        return to_device(batch, self._device, jnp.float32)

    def step(self, batch: Batch) -> jax.Array:
        if not self.jit:
            return self._eager_step(self._on_device(batch))
        loss: jax.Array
        self._state, loss = self._jit_step(self._state, self._on_device(batch))
        return loss

    def predict(self, batch: Batch) -> np.ndarray:
        if self.jit:
            return np.asarray(self._jit_predict(self._state, self._on_device(batch)))
        self.model.eval()
        outputs = self._twin.forward(self.model, self._on_device(batch))
        self.model.train()
        return np.asarray(outputs)

    def sync(self, out: Any = None) -> None:
        jax.block_until_ready(out if out is not None else self._state)  # type: ignore[no-untyped-call]

    def value(self, loss: jax.Array) -> float:
        return float(loss)
