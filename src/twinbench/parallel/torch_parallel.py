"""PyTorch side of the parallel suite: one process per device, started by ``torch.distributed.run``.

``python -m torch.distributed.run … -m twinbench.parallel.torch_parallel REQUEST.json`` — the
launcher builds that command line; torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous, and this module joins the process group (gloo on CPU, NCCL on GPU).

Data parallel: ``DistributedDataParallel`` around the twin's model; each rank takes its rows of the
global batch and DDP averages the gradients, so with a mean loss the update equals the one on the
whole batch. Tensor parallel: ``parallelize_module`` with ``ColwiseParallel`` / ``RowwiseParallel``
on the paired Linear layers (see `twinbench.parallel.plan.tp_plan`) over a 1-D ``DeviceMesh``;
every rank sees the whole batch. The single-device reference is the plain model on rank 0.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from twinbench.harness.process import thread_budget
from twinbench.parallel import common
from twinbench.spec import Batch


def _ddp_class() -> Any:
    from torch.nn.parallel import DistributedDataParallel

    class TransparentDDP(DistributedDataParallel):
        """DDP that lends the wrapped module's attributes, so a twin's ``loss_fn(model, batch)``
        that reads e.g. ``model.task`` runs unchanged on the wrapper (and through its forward,
        which is what arms the gradient all-reduce)."""

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name == "module":
                    raise
                return getattr(self.module, name)

    return TransparentDDP


class Trainer:
    """The twin's model, distributed by ``strategy``, with the step the twin's loss defines."""

    def __init__(
        self, request: dict[str, Any], env: dict[str, Any], optimizer: str, perturb: bool = False
    ) -> None:
        import torch

        from twinbench.backends import initial_weights
        from twinbench.backends.torch_backend import load_canonical, make_optimizer

        self.workload, self.size = common.workload_and_size(request)
        self.twin = self.workload.twin("torch")
        self.env = env
        self.model = self.twin.build(self.size.config).to(env["device"], torch.float32)
        init = initial_weights(self.workload, self.size, request["seed"], "torch")
        load_canonical(self.model, common.one_ulp_off(init, request["seed"]) if perturb else init)
        strategy = request["strategy"] if env["distributed"] else "single"
        self.strategy = strategy
        if strategy == "dp":
            cuda = env["device"].type == "cuda"
            self.net = _ddp_class()(self.model, device_ids=[env["local_rank"]] if cuda else None)
        elif strategy == "tp":
            self.net = self._parallelize()
        else:
            self.net = self.model
        config = common.optimizer_config(self.workload, optimizer)
        self.optimizer = make_optimizer(self.net.parameters(), config)

    def _parallelize(self) -> Any:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import (
            ColwiseParallel,
            RowwiseParallel,
            parallelize_module,
        )

        from twinbench.backends.torch_backend import canonical_shapes
        from twinbench.parallel.plan import tp_plan

        mesh = init_device_mesh(self.env["device"].type, (self.env["world"],))
        styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
        self.plan = tp_plan(self.workload.name, canonical_shapes(self.model))
        return parallelize_module(
            self.model, mesh, {module: styles[style]() for module, style in self.plan.items()}
        )

    def batch(self, batch: Batch) -> dict[str, Any]:
        """This rank's part of a global batch, on the device: its rows for dp, all of it else."""
        import torch

        from twinbench.backends.torch_backend import to_device

        if self.strategy == "dp":
            batch = common.rows(batch, self.env["rank"], self.env["world"])
        return to_device(batch, str(self.env["device"]), torch.float32)

    def step(self, batch: dict[str, Any]) -> Any:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.twin.loss_fn(self.net, batch)
        loss.backward()
        self.optimizer.step()
        return loss

    def global_loss(self, loss: Any) -> float:
        """The loss over the global batch: data-parallel ranks average their equal shares."""
        import torch.distributed as dist

        value = loss.detach().clone()
        if self.strategy == "dp":
            dist.all_reduce(value)
            value /= self.env["world"]
        return float(value)

    def weights(self) -> dict[str, Any]:
        """Canonical weights, whole (tensor-parallel shards gathered: a collective on all ranks)."""
        from torch.distributed.tensor import DTensor

        from twinbench.backends.torch_backend import to_canonical

        if self.strategy != "tp":
            return to_canonical(self.model)
        full = {
            key: value.full_tensor() if isinstance(value, DTensor) else value
            for key, value in self.model.state_dict().items()
        }
        plain = self.twin.build(self.size.config)
        plain.load_state_dict(full)
        return to_canonical(plain)

    def shardings(self) -> dict[str, str]:
        from torch.distributed.tensor import DTensor

        return {
            name: str(p.placements) if isinstance(p, DTensor) else "replicated"
            for name, p in self.model.named_parameters()
        }


def _environment(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    # Not harness.process.pin_threads: N ranks pinned to the same first cores would share one.
    threads = thread_budget()
    if threads:
        torch.set_num_threads(threads)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if request["device"] == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=request["timeout_s"]))
    if world != request["devices"]:
        raise RuntimeError(
            f"torchrun started {world} processes, the cell needs {request['devices']}"
        )
    return {
        "rank": rank,
        "world": world,
        "local_rank": local_rank,
        "device": device,
        "backend": backend,
        "distributed": True,
    }


def _sync(env: dict[str, Any]) -> None:
    import torch

    if env["device"].type == "cuda":
        torch.cuda.synchronize(env["device"])


def _barrier(env: dict[str, Any]) -> None:
    import torch.distributed as dist

    if env["backend"] == "nccl":
        dist.barrier(device_ids=[env["local_rank"]])
    else:
        dist.barrier()


def run(request: dict[str, Any]) -> None:
    import torch.distributed as dist

    env = _environment(request)
    rank = env["rank"]
    result: dict[str, Any] = {
        "framework": "torch",
        "impl": request["impl"],
        "devices": env["world"],
        "processes": env["world"],
        "backend": env["backend"],
        "platform": env["device"].type,
        "parity": {},
    }
    steps = request["parity_steps"]
    for opt_name in request["parity_optimizers"] if steps else []:
        trainer = Trainer(request, env, opt_name)
        batches = common.global_batches(trainer.workload, trainer.size, request["seed"], steps)
        losses = []
        for k, batch in enumerate(batches):
            common.maybe_fail(request, rank, k)
            with trainer.net.no_sync() if common.planted_bug(request) else contextlib.nullcontext():
                losses.append(trainer.global_loss(trainer.step(trainer.batch(batch))))
        weights = trainer.weights()
        result["param_specs"] = trainer.shardings()
        entry: dict[str, Any] = {"lr": trainer.optimizer.param_groups[0]["lr"]}
        if rank == 0:
            entry["parallel"] = common.save_weights(
                request["out_dir"], f"{opt_name}-parallel", weights
            )
            entry["parallel_losses"] = losses
            for label, feed in (("single", batches), ("perturbed", map(common.reordered, batches))):
                alone = {**env, "distributed": False}
                single = Trainer(request, alone, opt_name, perturb=label == "perturbed")
                entry[f"{label}_losses"] = [
                    float(single.step(single.batch(b)).detach()) for b in feed
                ]
                entry[label] = common.save_weights(
                    request["out_dir"], f"{opt_name}-{label}", single.weights()
                )
        result["parity"][opt_name] = entry
        _barrier(env)
    if request["timing"]:
        result["timing"] = _time(request, env)
    if rank == 0:
        common.write_result(request["out_dir"], result)
    dist.destroy_process_group()


def _time(request: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """Per-step seconds by `common.time_steps`, a barrier before each block; a sample is the
    slowest rank's. Data parallel is timed again under ``no_sync()`` (no gradient all-reduce),
    which bounds the communication share."""
    import torch
    import torch.distributed as dist

    trainer = Trainer(request, env, _train_optimizer(request))
    batches = [
        trainer.batch(b)
        for b in common.global_batches(
            trainer.workload, trainer.size, request["seed"] + 1, common.TIMED_BATCHES
        )
    ]
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "step": contextlib.nullcontext
    }
    if trainer.strategy == "dp":
        variants["no_comm"] = trainer.net.no_sync
    timing: dict[str, Any] = {"optimizer": trainer.workload.train_optimizer}
    fault_step = request["parity_steps"]
    for name, context in variants.items():
        with context():
            first_s, samples = common.time_steps(
                trainer.step,
                batches,
                lambda _out: _sync(env),
                request,
                rank=env["rank"],
                fault_step=fault_step,
                before_block=lambda: _barrier(env),
            )
        fault_step += request["repeats"]
        slowest = torch.tensor(samples, dtype=torch.float64, device=env["device"])
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        timing[f"{name}_first_s"] = first_s
        timing[name] = {"samples": slowest.cpu().tolist()}
    return timing


def _train_optimizer(request: dict[str, Any]) -> str:
    workload, _ = common.workload_and_size(request)
    return workload.train_optimizer


def main(argv: list[str]) -> None:
    request = common.load_request(argv[0])
    rank = int(os.environ.get("RANK", "0"))
    common.run_reporting_errors(request["out_dir"], rank, lambda: run(request))


if __name__ == "__main__":
    main(sys.argv[1:])
