"""JAX side: canonical-weight converters, optax optimizers and the twin runner used by parity.

Canonical layouts are Flax's own, so converting is flattening the parameter state's paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.protocols import Activation
from twinbench.canonical import Canonical, check_compatible
from twinbench.spec import Batch, OptimizerConfig, Size, Workload

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}


def _name(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path)


ModelState = nnx.State[Any, Any]  # flax leaves State's key and value types open


def state_to_canonical(state: ModelState) -> Canonical:
    """A parameter (or gradient) state as canonical float32 NumPy arrays."""
    return {
        _name(path): np.array(variable.get_value(), dtype=np.float32)
        for path, variable in nnx.to_flat_state(state)
    }


# Canonical weights are the parameters plus the running statistics (BatchNorm's mean and var).
WEIGHTS = (nnx.Param, nnx.BatchStat)


def to_canonical(model: nnx.Module) -> Canonical:
    """The model's parameters and running statistics in canonical names and layouts."""
    return state_to_canonical(nnx.state(model, WEIGHTS))


def statistics_to_canonical(model: nnx.Module) -> Canonical:
    """Only the running statistics (BatchStat variables), canonical."""
    return state_to_canonical(nnx.state(model, nnx.BatchStat))


def canonical_shapes(model: nnx.Module, *, statistics: bool = True) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of the model's parameters (and, by default, running statistics)."""
    state = nnx.state(model, WEIGHTS if statistics else nnx.Param)
    return {
        _name(path): tuple(variable.get_value().shape)
        for path, variable in nnx.to_flat_state(state)
    }


def load_canonical(model: nnx.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Copy canonical weights into ``model`` in place, keeping each variable's type and dtype."""
    flat = nnx.to_flat_state(nnx.state(model, WEIGHTS))
    check_compatible(canonical_shapes(model), weights, model=type(model).__name__)
    new = {
        path: type(variable)(jnp.asarray(weights[_name(path)], dtype=variable.get_value().dtype))
        for path, variable in flat
    }
    nnx.update(model, nnx.from_flat_state(new))


def cast_params(model: nnx.Module, dtype: Any) -> None:
    """Cast every parameter of ``model`` to ``dtype`` in place."""
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda a: a.astype(dtype), state))


def make_tx(config: OptimizerConfig) -> optax.GradientTransformation:
    """The optax transformation that matches torch.optim's semantics for ``config``.

    Adam's weight decay is an L2 term added to the gradient before the moments, as in
    torch.optim.Adam — not optax.adamw, which decays decoupled (that is AdamW).
    """
    if config.name == "adamw":
        return optax.adamw(
            config.lr,
            b1=config.betas[0],
            b2=config.betas[1],
            eps=config.eps,
            eps_root=0.0,
            weight_decay=config.weight_decay,
        )
    if config.name == "adam":
        step = optax.chain(
            optax.scale_by_adam(
                b1=config.betas[0], b2=config.betas[1], eps=config.eps, eps_root=0.0
            ),
            optax.scale_by_learning_rate(config.lr),
        )
    else:
        step = optax.sgd(config.lr, momentum=config.momentum or None, nesterov=False)
    if config.weight_decay:
        return optax.chain(optax.add_decayed_weights(config.weight_decay), step)
    return step


def to_device(batch: Batch, device: jax.Device | None, dtype: Any) -> dict[str, jax.Array]:
    """Batch arrays on ``device``; floating arrays take the run's dtype."""
    return {
        key: jax.device_put(
            array.astype(dtype) if np.issubdtype(array.dtype, np.floating) else array, device
        )
        for key, array in batch.items()
    }


def build_abstract(workload: Workload, size: Size) -> nnx.Module:
    """The twin's model with abstract arrays only (no memory), for shapes and counts."""
    twin = workload.twin("jax")
    model: nnx.Module = nnx.eval_shape(lambda: twin.build(size.config))
    return model


def build_cast(workload: Workload, size: Size, dtype: Any, device: jax.Device) -> nnx.Module:
    """The twin's model with its parameters in ``dtype``, to be filled by `load_canonical`.

    Built abstractly (`nnx.eval_shape`: no random init, no memory) when every variable is one
    `load_canonical` fills in; a twin with other state (an RNG stream, a cached table), which has
    no canonical values, is built eagerly on ``device`` with its own init.
    """
    twin = workload.twin("jax")

    def build() -> nnx.Module:
        model: nnx.Module = twin.build(size.config)
        cast_params(model, dtype)
        return model

    model: nnx.Module = nnx.eval_shape(build)
    if len(nnx.to_flat_state(nnx.state(model, nnx.Not(WEIGHTS)))):
        with jax.default_device(device):
            model = build()
    return model


def is_abstract(model: nnx.Module) -> bool:
    """Whether ``model`` holds shapes only (`build_cast` built it abstractly, nothing loaded)."""
    leaves = jax.tree.leaves(nnx.state(model))
    return any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)


class JaxRunner:
    """Runs a workload's JAX twin for the parity checks.

    The model is built abstractly (`nnx.eval_shape`, no random init) and takes its values from
    the first `load`; until then it holds the canonical init for seed 0 (`initial_weights`).
    A twin with state besides parameters and running statistics (an RNG stream, a cached table)
    is built eagerly instead, since that state has no canonical values to load. ``outputs`` and
    ``loss_and_grads`` run jitted, as the twin is timed.
    """

    framework = "jax"

    def __init__(
        self, workload: Workload, size: Size, *, dtype: str = "float32", device: str = "cpu"
    ) -> None:
        self.workload = workload
        self.twin = workload.twin("jax")
        self.size = size
        self.device = jax.devices(device)[0]
        self.dtype = DTYPES[dtype]
        self._model = build_cast(workload, size, self.dtype, self.device)
        self._loaded = not is_abstract(self._model)  # an abstract model waits for `load`
        self._forward = nnx.jit(self.twin.forward)
        self._loss_and_grads = nnx.jit(nnx.value_and_grad(self.twin.loss_fn))

    @property
    def model(self) -> nnx.Module:
        """The twin's model, with concrete values (the canonical init if nothing was loaded)."""
        if not self._loaded:
            self.load(initial_weights(self.workload, self.size))
        return self._model

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        with jax.default_device(self.device):
            load_canonical(self._model, weights)
        self._loaded = True

    def weights(self) -> Canonical:
        return to_canonical(self.model)

    def statistics(self) -> Canonical:
        return statistics_to_canonical(self.model)

    def set_mode(self, train: bool) -> None:
        # flax's Module.train and .eval are unannotated
        if train:
            self._model.train()  # type: ignore[no-untyped-call]
        else:
            self._model.eval()  # type: ignore[no-untyped-call]

    def _batch(self, batch: Batch) -> dict[str, jax.Array]:
        return to_device(batch, self.device, self.dtype)

    def outputs(self, batch: Batch) -> np.ndarray:
        return np.asarray(self._forward(self.model, self._batch(batch)), dtype=np.float32)

    def loss_and_grads(self, batch: Batch) -> tuple[float, Canonical]:
        loss, grads = self._loss_and_grads(self.model, self._batch(batch))
        return float(loss), state_to_canonical(grads)

    def train_curve(self, batches: list[Batch], config: OptimizerConfig) -> list[float]:
        """Loss before each of ``len(batches)`` optimizer steps, one batch per step."""
        optimizer = nnx.Optimizer(self.model, make_tx(config), wrt=nnx.Param)
        # Committed to the device, as the step's outputs will be: otherwise the second call
        # sees other argument shardings than the first and XLA compiles the step again.
        pair = (self.model, optimizer)
        nnx.update(pair, jax.device_put(nnx.state(pair), self.device))
        loss_fn = self.twin.loss_fn

        @nnx.jit
        def step(
            model: nnx.Module, optimizer: nnx.Optimizer[nnx.Module], batch: dict[str, jax.Array]
        ) -> jax.Array:
            loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
            optimizer.update(model, grads)
            return loss  # type: ignore[no-any-return]  # the twin's loss_fn is untyped

        return [float(step(self.model, optimizer, self._batch(batch))) for batch in batches]

    def activations(self, batch: Batch) -> dict[str, Activation]:
        """Each submodule's output (first call), by canonical module name; NNX records no
        inputs."""
        forward = nnx.capture(self.twin.forward, nnx.Intermediate, method_outputs=nnx.Intermediate)
        _, intermediates = forward(self.model, self._batch(batch))
        recorded = {}
        for path, variable in nnx.to_flat_state(intermediates):
            *module_path, method = path
            value = variable.get_value()
            first = value[0] if isinstance(value, tuple) else value
            if method == "__call__" and module_path and isinstance(first, jax.Array):
                recorded[_name(tuple(module_path))] = Activation(
                    np.asarray(first, dtype=np.float32), None
                )
        return recorded

    def apply_layer(self, name: str, x: np.ndarray) -> np.ndarray:
        """Run the submodule ``name`` alone on input ``x`` (to tell a layer from its input)."""
        module: Any = self.model
        for part in name.split("."):
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        return np.asarray(module(jnp.asarray(x, dtype=self.dtype)), dtype=np.float32)
