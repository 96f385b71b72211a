"""What the timed twins of both frameworks share: the settings a timing cell gives them, the
batches they cycle through, and the best-of loop of the matmul probe. Imports no framework."""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle, islice
from time import perf_counter
from typing import Generic, TypedDict, TypeVar

from twinbench.spec import Batch, Size, Workload

DEVICE_BATCHES = 4  # distinct batches kept on the device and cycled through while timing

DeviceBatch = TypeVar("DeviceBatch")


class BenchSettings(TypedDict):
    """How a timing cell runs a twin: every `Bench` constructor takes these as keywords."""

    mode: str  # a twinbench.modes name, e.g. "jax-jit"
    phase: str  # "train" (loss, gradients, optimizer update) or "infer" (forward only)
    dtype: str
    device: str  # "cpu" or "cuda"
    seed: int
    allow_tf32: bool


class DeviceBatches(Generic[DeviceBatch]):
    """The workload's first `DEVICE_BATCHES` batches, moved to the device once, then handed out
    in turn, so a timed step never waits for a host-to-device copy."""

    def __init__(
        self,
        workload: Workload,
        size: Size,
        seed: int,
        to_device: Callable[[Batch], DeviceBatch],
    ) -> None:
        batches = [to_device(b) for b in islice(workload.batches(size, seed), DEVICE_BATCHES)]
        self.first = batches[0]
        self._cycle = cycle(batches)

    def next(self) -> DeviceBatch:
        """The next batch, round-robin."""
        return next(self._cycle)


def fastest_call(run: Callable[[], object], *, seconds: float) -> float:
    """The shortest wall time of ``run()`` (which must wait for its own result) over repeated
    calls for about ``seconds``."""
    best = float("inf")
    deadline = perf_counter() + seconds
    while perf_counter() < deadline:
        start = perf_counter()
        run()
        best = min(best, perf_counter() - start)
    return best
