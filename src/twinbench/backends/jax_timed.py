"""A JAX twin set up for timing: ``jax.jit`` (AOT-compiled, buffers donated) or op-by-op."""

from __future__ import annotations

import re
from collections.abc import Callable
from time import perf_counter
from typing import Any, Unpack

import jax
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.jax_backend import (
    DTYPES,
    ModelState,
    build_cast,
    load_canonical,
    make_tx,
    to_device,
)
from twinbench.backends.jax_steps import JaxBatch, eager_train_step, pure_train_step
from twinbench.backends.timed import BenchSettings, DeviceBatches, fastest_call
from twinbench.spec import Size, Workload

_WHILE_LOOP = re.compile(r"\bwhile\(")  # an HLO while instruction in the compiled module


def _device(device: str) -> jax.Device:
    """The first JAX device of a cell's ``device`` ("cuda" or "cpu")."""
    return jax.devices("gpu" if device == "cuda" else "cpu")[0]


def _block_until_ready(tree: object) -> None:
    jax.block_until_ready(tree)  # type: ignore[no-untyped-call]  # unannotated in jax


class JaxBench:
    """One cell's JAX side: model, optimizer and batches on the device, a step to time.

    Under ``jax-jit`` the whole step — loss, gradients and optimizer update — is one compiled
    function over the split NNX state, with the state's buffers donated. ``jax-eager`` runs the
    same step on the stateful NNX objects, op by op.
    """

    def __init__(self, workload: Workload, size: Size, **settings: Unpack[BenchSettings]) -> None:
        precision = "tensorfloat32" if settings["allow_tf32"] else "highest"
        # jax's config.update is unannotated
        jax.config.update("jax_default_matmul_precision", precision)  # type: ignore[no-untyped-call]
        self.jit = settings["mode"] == "jax-jit"
        target = _device(settings["device"])
        dtype, seed = DTYPES[settings["dtype"]], settings["seed"]
        twin = workload.twin("jax")
        # Any: the twin's own module class, whose train() and eval() flax leaves unannotated
        model: Any = build_cast(workload, size, dtype, target)
        with jax.default_device(target):
            load_canonical(model, initial_weights(workload, size, seed, framework="jax"))
        self._batches = DeviceBatches(workload, size, seed, lambda b: to_device(b, target, dtype))

        eager_step: Callable[[JaxBatch], jax.Array]
        pure_step: Callable[[ModelState, JaxBatch], tuple[ModelState, jax.Array]]
        if settings["phase"] == "train":
            model.train()
            optimizer = nnx.Optimizer(
                model, make_tx(workload.optimizers[workload.train_optimizer]), wrt=nnx.Param
            )
            graphdef, state = nnx.split((model, optimizer))
            self._objects: nnx.Module | tuple[nnx.Module, nnx.Optimizer[Any]] = (model, optimizer)
            eager_step = eager_train_step(twin.loss_fn, model, optimizer)
            pure_step = pure_train_step(twin.loss_fn, graphdef)
            donate: tuple[int, ...] = (0,)
        else:
            model.eval()
            graphdef, state = nnx.split(model)
            self._objects = model

            def eager_forward(batch: JaxBatch) -> jax.Array:
                outputs: jax.Array = twin.forward(model, batch)
                return outputs

            def pure_forward(state: ModelState, batch: JaxBatch) -> tuple[ModelState, jax.Array]:
                return state, twin.forward(nnx.merge(graphdef, state), batch)

            eager_step, pure_step = eager_forward, pure_forward
            donate = ()
        self._eager_step = eager_step
        # Eager, the objects carry the state: a split kept here would pin the initial arrays
        # once the first step has replaced them, a second copy of the model in the process.
        self._state: ModelState | None = state if self.jit else None
        self._jitted = jax.jit(pure_step, donate_argnums=donate)
        self._compiled: jax.stages.Compiled | None = None

    def compile(self) -> float | None:
        """Ahead-of-time ``lower()`` + ``compile()`` of the step, timed (jit mode only)."""
        if not self.jit:
            return None
        start = perf_counter()
        self._compiled = self._jitted.lower(self._carried(), self._batches.first).compile()
        return perf_counter() - start

    def step(self) -> Any:
        if self._compiled is None:
            return self._eager_step(self._batches.next())
        self._state, out = self._compiled(self._state, self._batches.next())
        return out

    def sync(self, out: Any = None) -> None:
        _block_until_ready(out if out is not None else self._carried())

    def _carried(self) -> ModelState:
        """The state the step carries: the jitted step's last returned state, or (eager) the
        stateful objects' arrays as they are now."""
        return nnx.state(self._objects) if self._state is None else self._state

    def flops_per_step(self) -> float | None:
        """FLOPs of one step from XLA's ``cost_analysis()`` of the compiled step.

        None when the step contains a loop (``lax.scan``, ``fori_loop``): XLA counts a loop's body
        once, not once per iteration (jax-ml/jax#18672), so a recurrent net's count would be off
        by about the sequence length — no figure rather than a wrong one.
        """
        if (compiled := self._compiled) is None:
            compiled = self._jitted.lower(self._carried(), self._batches.first).compile()
        if _WHILE_LOOP.search(compiled.as_text() or ""):
            return None
        analysis = compiled.cost_analysis()
        if isinstance(analysis, list):  # older jaxlib: one dict per computation
            analysis = analysis[0] if analysis else {}
        flops = (analysis or {}).get("flops")
        return float(flops) if flops is not None and flops >= 0 else None

    def peak_device_memory(self) -> int | None:
        stats = jax.devices()[0].memory_stats()
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None

    def state_bytes(self) -> int:
        """Bytes of the state the step carries (the jitted step's returned state; eager, the
        stateful objects' arrays) and of one batch, each array counted once."""
        leaves = jax.tree.leaves((self._carried(), self._batches.first))
        return sum({id(a): a.nbytes for a in leaves if isinstance(a, jax.Array)}.values())


def matmul_probe(*, n: int, dtype: str, device: str, seconds: float) -> float:
    """Best FLOP/s of an n×n matmul over about ``seconds``: the machine's achievable peak."""
    target = _device(device)
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (n, n), DTYPES[dtype]), target)
    b = jax.device_put(jax.random.normal(key_b, (n, n), DTYPES[dtype]), target)
    matmul = jax.jit(jax.numpy.matmul).lower(a, b).compile()
    _block_until_ready(matmul(a, b))
    return 2 * n**3 / fastest_call(lambda: _block_until_ready(matmul(a, b)), seconds=seconds)
