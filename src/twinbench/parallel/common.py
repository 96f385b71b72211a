"""What the torch and JAX parallel workers share: the request, the data, the fault hook, the
result files. Imports no framework.

Every worker process of a cell reads the same request file, generates the same global batches
from the seed (so no process ships data to another) and takes its own rows. Rank 0 writes
``result.json`` and the final weights as ``.npz`` files into the request's ``out_dir``; a rank that
fails writes ``error-rank<r>.txt`` there before it exits, which is how the launcher names the
worker's error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from twinbench.harness.timing import Sync, run_steps
from twinbench.spec import Batch, OptimizerConfig, Size, Workload

RESULT_FILE = "result.json"
TIMED_BATCHES = 4  # distinct global batches cycled through while timing


def load_request(path: str) -> dict[str, Any]:
    """The cell's request, as the launcher wrote it."""
    request: dict[str, Any] = json.loads(Path(path).read_text())
    return request


def workload_and_size(request: dict[str, Any]) -> tuple[Workload, Size]:
    """The workload's size preset with the cell's global batch size."""
    from twinbench.registry import builtin, from_file

    if request.get("workload_file"):
        workload = from_file(request["workload_file"])
    else:
        workload = builtin(request["workload"])
    size = dataclasses.replace(workload.size(request["size"]), batch_size=request["global_batch"])
    return workload, size


def global_batches(workload: Workload, size: Size, seed: int, count: int) -> list[Batch]:
    """The first ``count`` global batches of the workload's seeded stream."""
    return list(islice(workload.batches(size, seed), count))


def rows(batch: Batch, rank: int, world: int) -> Batch:
    """Rank ``rank``'s contiguous share of a global batch (the batch divides by ``world``)."""
    n = next(iter(batch.values())).shape[0] // world
    return {key: value[rank * n : (rank + 1) * n] for key, value in batch.items()}


def reordered(batch: Batch) -> Batch:
    """The same samples in reverse order: the same mean loss in exact arithmetic, other rounding."""
    return {key: np.ascontiguousarray(value[::-1]) for key, value in batch.items()}


def one_ulp_off(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Every float32 weight moved one unit in the last place, up or down at random.

    With `reordered` batches this is the one-device run perturbed at rounding level; how far
    it ends from the unperturbed run is the rounding floor the N-device run is judged against.
    """
    rng = np.random.default_rng(seed + 7919)
    out = {}
    for key, value in weights.items():
        value = np.asarray(value, np.float32)
        direction = np.where(rng.random(value.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
        out[key] = np.nextafter(value, direction)
    return out


def optimizer_config(workload: Workload, name: str) -> OptimizerConfig:
    """The workload's own settings for ``name`` when it has them, else the parity defaults."""
    from twinbench.spec import DEFAULT_OPTIMIZERS, OptimizerConfig

    if name in workload.optimizers:
        return workload.optimizers[name]
    if name in DEFAULT_OPTIMIZERS:
        return DEFAULT_OPTIMIZERS[name]
    return OptimizerConfig(name, lr=1e-3, weight_decay=0.01)  # type: ignore[arg-type]


def maybe_fail(request: dict[str, Any], rank: int, step: int) -> None:
    """Tests only: rank ``fault.rank`` dies (SIGKILL) or raises at training step ``fault.step``."""
    fault = request.get("fault")
    if not fault or fault.get("kind") == "no_allreduce":
        return
    if fault["rank"] != rank or fault["step"] != step:
        return
    if fault.get("kind") == "raise":
        raise RuntimeError(f"injected fault at step {step}")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def planted_bug(request: dict[str, Any]) -> bool:
    """Tests only: data parallelism trains without its gradient all-reduce (parity must fail)."""
    fault = request.get("fault") or {}
    return fault.get("kind") == "no_allreduce" and request["strategy"] == "dp"


def _nothing() -> None:
    pass


def time_steps(
    train_step: Callable[[Any], Any],
    batches: list[Any],
    sync: Sync,
    request: dict[str, Any],
    *,
    rank: int,
    fault_step: int,
    before_block: Callable[[], None] = _nothing,
) -> tuple[float, list[float]]:
    """The first step's seconds (compilation included) and the timed blocks' per-step seconds.

    ``train_step(batch)`` trains on each of ``batches`` in turn, over and over: first one step,
    then ``warmup`` untimed steps, then ``repeats`` blocks of ``block`` steps, each timed by
    `twinbench.harness.timing.run_steps` (one synchronisation per block); a sample is one
    block's seconds over ``block``. The counts are fixed, not budgeted, since every process
    must run the same steps. ``before_block`` runs before the first step and before each block
    (a barrier, so that the ranks start together); the fault hook sees block ``i`` as step
    ``fault_step + i``.
    """
    feed = cycle(batches)

    def step() -> Any:
        return train_step(next(feed))

    before_block()
    first_s = run_steps(step, sync, 1)
    if request["warmup"]:
        run_steps(step, sync, request["warmup"])
    samples = []
    for index in range(request["repeats"]):
        maybe_fail(request, rank, fault_step + index)
        before_block()
        samples.append(run_steps(step, sync, request["block"]) / request["block"])
    return first_s, samples


def save_weights(out_dir: str, label: str, weights: dict[str, np.ndarray]) -> str:
    """Write ``weights`` as ``<label>.npz`` into ``out_dir``; returns the file's name."""
    name = f"{label}.npz"
    # typed as Any: numpy's stub reads any ** keyword as possibly its own allow_pickle flag
    arrays: dict[str, Any] = dict(weights)
    np.savez(Path(out_dir) / name, **arrays)
    return name


def write_result(out_dir: str, result: dict[str, Any]) -> None:
    """Rank 0's result file, written whole or not at all."""
    target = Path(out_dir) / RESULT_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=float))
    tmp.replace(target)  # the launcher never reads half a file


def error_file(out_dir: str, rank: int) -> Path:
    """Where rank ``rank`` leaves its one-line error for the launcher."""
    return Path(out_dir) / f"error-rank{rank}.txt"


def run_reporting_errors(out_dir: str, rank: int, main: Callable[[], None]) -> None:
    """Run ``main``; on an exception leave its one-line summary for the launcher, then exit 1."""
    try:
        main()
    except Exception as exc:
        traceback.print_exc()
        error_file(out_dir, rank).write_text(f"{type(exc).__name__}: {exc}")
        sys.stderr.flush()
        os._exit(1)  # skip atexit hooks that could wait on peers that are gone


def cycle(items: list[Any]) -> Iterator[Any]:
    """``items`` over and over (the timed batches)."""
    while True:
        yield from items
