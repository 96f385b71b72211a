"""JAX side of the parallel suite: one program over a ``Mesh``, the placement decides the rest.

``python -m twinbench.parallel.jax_parallel REQUEST.json [PROCESS_ID]``. The launcher starts it in
one of two ways:

* ``mesh`` — one process that sees all N devices (on a CPU, N simulated host devices from
  ``--xla_force_host_platform_device_count=N``, set in the environment before JAX is imported);
* ``processes`` — N processes (or one per machine) joined by ``jax.distributed.initialize``; the
  request's ``distributed`` entry holds the coordinator address, the process count and the timeout.

The training step is the twin's own ``loss_fn`` under ``jax.jit``, written once. Data parallel:
the batch is sharded over the ``data`` axis (``NamedSharding(mesh, P("data"))``) and the
parameters are replicated; XLA inserts the gradient all-reduce. Tensor parallel: the paired Linear
kernels are sharded over the ``model`` axis (column-wise ``P(None, "model")``, row-wise
``P("model", None)``) and the batch is replicated; XLA inserts the all-reduce after each row-wise
layer. The single-device reference runs the same jitted step with everything on one device.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinbench.parallel import common

if TYPE_CHECKING:
    from jax.sharding import NamedSharding, PartitionSpec

AXES = {"dp": "data", "tp": "model"}


def _name(path: tuple[Any, ...]) -> str:
    from jax.tree_util import DictKey, GetAttrKey, SequenceKey

    parts = []
    for key in path:
        if isinstance(key, DictKey):
            parts.append(str(key.key))
        elif isinstance(key, SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, GetAttrKey) and key.name != "value":
            parts.append(key.name)
    return ".".join(parts)


def _spec(*axes: str | None) -> PartitionSpec:
    """``PartitionSpec(*axes)``: the mesh axis each array dimension is split over (None: whole)."""
    from jax.sharding import PartitionSpec

    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]  # jax leaves it unannotated


def _param_spec(strategy: str, plan: dict[str, str], name: str) -> PartitionSpec:
    if strategy != "tp":
        return _spec()
    module, _, leaf = name.rpartition(".")
    style = plan.get(module)
    if style == "colwise":
        return _spec(None, "model") if leaf == "kernel" else _spec("model")
    if style == "rowwise" and leaf == "kernel":
        return _spec("model", None)
    return _spec()


def _sharded(array: Any, sharding: NamedSharding) -> Any:
    """``array`` placed over ``sharding``'s devices, each device holding its own slice."""
    import jax

    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


class Setup:
    """The model's state split for a pure training step, placed by ``place(name, array)``."""

    def __init__(
        self,
        workload: Any,
        size: Any,
        seed: int,
        place: Callable[[str, Any], Any],
        perturb: bool = False,
    ):
        import jax
        import numpy as np
        from flax import nnx

        from twinbench.backends import initial_weights
        from twinbench.backends.jax_backend import load_canonical

        self.twin = workload.twin("jax")
        model = self.twin.build(size.config)
        init = initial_weights(workload, size, seed, framework="jax")
        load_canonical(model, common.one_ulp_off(init, seed) if perturb else init)
        self.graphdef, params, *others = nnx.split(model, nnx.Param, ...)
        (rest,) = others  # what is not a Param: one state for the one remaining filter

        def put(path: tuple[Any, ...], leaf: Any) -> Any:
            return place(_name(path), np.asarray(leaf))

        self.params = jax.tree_util.tree_map_with_path(put, params)
        self.rest = jax.tree_util.tree_map_with_path(lambda _p, a: place("", np.asarray(a)), rest)

    def loss_of(self, params: Any, rest: Any, batch: Any) -> Any:
        from flax import nnx

        return self.twin.loss_fn(nnx.merge(self.graphdef, params, rest), batch)

    def step_fn(self, tx: Any) -> Callable[..., Any]:
        """One optimizer step (not yet jitted): (params, opt_state, rest, batch) -> new + loss."""
        import jax
        import optax

        loss_of = self.loss_of

        def step(params: Any, opt_state: Any, rest: Any, batch: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_of)(params, rest, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        return step


def _canonical(params: Any, processes: int) -> dict[str, Any]:
    import jax
    import numpy as np

    if processes > 1:  # parameters sharded over other processes' devices: gather them here
        from jax.experimental import multihost_utils

        params = multihost_utils.process_allgather(params, tiled=True)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {_name(path): np.asarray(leaf, dtype=np.float32) for path, leaf in flat}


def run(request: dict[str, Any]) -> None:
    import jax

    if request["device"] == "cpu":
        jax.config.update("jax_platforms", "cpu")  # type: ignore[no-untyped-call]  # unannotated
    dist = request.get("distributed")
    if dist:
        jax.distributed.initialize(
            coordinator_address=dist["coordinator_address"],
            num_processes=dist["num_processes"],
            process_id=dist["process_id"],
            initialization_timeout=max(1, int(dist["timeout_s"])),
        )
    import numpy as np
    from jax.sharding import Mesh, NamedSharding

    from twinbench.backends import canonical_shapes
    from twinbench.backends.jax_backend import make_tx
    from twinbench.parallel.plan import tp_plan

    n, strategy = request["devices"], request["strategy"]
    if len(jax.devices()) < n:
        raise RuntimeError(f"{n} devices requested, JAX sees {len(jax.devices())}")
    rank, processes = jax.process_index(), jax.process_count()
    axis = AXES[strategy]
    mesh = Mesh(np.array(jax.devices()[:n]), (axis,))
    workload, size = common.workload_and_size(request)
    plan = (
        tp_plan(workload.name, canonical_shapes(workload, size, "jax")) if strategy == "tp" else {}
    )

    def on_mesh(name: str, array: Any) -> Any:
        return _sharded(array, NamedSharding(mesh, _param_spec(strategy, plan, name)))

    batch_spec = NamedSharding(mesh, _spec(axis) if strategy == "dp" else _spec())

    def batch_on_mesh(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: _sharded(v, batch_spec) for k, v in batch.items()}

    local = jax.local_devices()[0]

    def on_one(_name: str, array: Any) -> Any:
        return jax.device_put(array, local)

    def batch_on_one(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: jax.device_put(v, local) for k, v in batch.items()}

    result: dict[str, Any] = {
        "framework": "jax",
        "impl": request["impl"],
        "devices": n,
        "processes": processes,
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "tp_plan": plan,
        "parity": {},
    }
    steps = request["parity_steps"]
    batches = common.global_batches(workload, size, request["seed"], max(steps, 1))
    for opt_name in request["parity_optimizers"] if steps else []:
        config = common.optimizer_config(workload, opt_name)
        tx = make_tx(config)
        entry: dict[str, Any] = {"lr": config.lr}
        for label, place, put_batch in (
            ("parallel", on_mesh, batch_on_mesh),
            ("single", on_one, batch_on_one),
            ("perturbed", on_one, lambda b: batch_on_one(common.reordered(b))),
        ):
            if label != "parallel" and rank != 0:
                continue
            setup = Setup(workload, size, request["seed"], place, perturb=label == "perturbed")
            step = jax.jit(setup.step_fn(tx))
            if label == "parallel" and common.planted_bug(request):
                step = _without_allreduce(setup.step_fn(tx), mesh)
            training = Training(step, setup.params, jax.jit(tx.init)(setup.params), setup.rest)
            losses = []
            for k, batch in enumerate(batches[:steps]):
                if label == "parallel":
                    common.maybe_fail(request, rank, k)
                _, loss = training.step(put_batch(batch))
                losses.append(float(loss))
            params = training.params
            if label == "parallel":  # where the step left each parameter (sharded or not)
                result["param_specs"] = {
                    _name(path): str(leaf.sharding.spec)
                    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
                }
            weights = _canonical(params, processes if label == "parallel" else 1)
            if rank == 0:
                entry[label] = common.save_weights(
                    request["out_dir"], f"{opt_name}-{label}", weights
                )
                entry[f"{label}_losses"] = losses
        result["parity"][opt_name] = entry
    if request["timing"]:
        result["timing"] = _time(request, workload, size, mesh, on_mesh, batch_on_mesh, rank)
    if rank == 0:
        common.write_result(request["out_dir"], result)
    if dist:
        jax.distributed.shutdown()  # type: ignore[no-untyped-call]  # jax leaves it unannotated


def _time(
    request: dict[str, Any],
    workload: Any,
    size: Any,
    mesh: Any,
    place: Callable[[str, Any], Any],
    put_batch: Callable[[dict[str, Any]], dict[str, Any]],
    rank: int,
) -> dict[str, Any]:
    """Per-step seconds by `common.time_steps`; the first step includes the compilation.

    Data parallel also times the same step under ``shard_map`` without the gradient
    all-reduce: each device trains on its own shard alone.
    """
    import jax

    from twinbench.backends.jax_backend import make_tx

    tx = make_tx(common.optimizer_config(workload, workload.train_optimizer))
    setup = Setup(workload, size, request["seed"], place)
    body = setup.step_fn(tx)
    batches = [
        put_batch(b)
        for b in common.global_batches(workload, size, request["seed"] + 1, common.TIMED_BATCHES)
    ]
    variants = {"step": jax.jit(body)}
    if request["strategy"] == "dp":
        variants["no_comm"] = _without_allreduce(body, mesh)
    timing: dict[str, Any] = {"optimizer": workload.train_optimizer}
    fault_step = request["parity_steps"]
    for name, step in variants.items():
        training = Training(step, setup.params, jax.jit(tx.init)(setup.params), setup.rest)
        first_s, samples = common.time_steps(
            training.step, batches, _ready, request, rank=rank, fault_step=fault_step
        )
        fault_step += request["repeats"]
        timing[f"{name}_first_s"] = first_s
        timing[name] = {"samples": samples}
    return timing


class Training:
    """A jitted pure step and the state it carries from one call to the next."""

    def __init__(self, step: Callable[..., Any], params: Any, opt_state: Any, rest: Any) -> None:
        self._step, self.params, self.opt_state, self.rest = step, params, opt_state, rest

    def step(self, batch: Any) -> Any:
        """One step on ``batch``; returns what to wait on (the new parameters and the loss)."""
        self.params, self.opt_state, loss = self._step(
            self.params, self.opt_state, self.rest, batch
        )
        return self.params, loss


def _ready(out: Any) -> None:
    import jax

    jax.block_until_ready(out)  # type: ignore[no-untyped-call]  # jax leaves it unannotated


def _without_allreduce(body: Callable[..., Any], mesh: Any) -> Any:
    """The data-parallel step with each device training on its own shard alone (no gradient
    all-reduce): the communication-free baseline for timing, and the tests' planted bug."""
    import jax

    return jax.jit(
        jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(_spec(), _spec(), _spec(), _spec("data")),
            out_specs=(_spec(), _spec(), _spec()),
            check_vma=False,  # outputs differ per device: fine for timing, never for results
        )
    )


def main(argv: list[str]) -> None:
    request = common.load_request(argv[0])
    if len(argv) > 1:  # processes: this process's id, the rest of jax.distributed's settings
        request["distributed"] = {**request["distributed"], "process_id": int(argv[1])}
    rank = request["distributed"]["process_id"] if request.get("distributed") else 0
    common.run_reporting_errors(request["out_dir"], rank, lambda: run(request))


if __name__ == "__main__":
    main(sys.argv[1:])
