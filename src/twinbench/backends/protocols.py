"""What parity and the timing harness ask of a framework's backend, as typed protocols.

`Runner` is what parity (and the optimizer suite) drive: `TorchRunner` and `JaxRunner`.
`Bench` is what a timing worker drives: `TorchBench` and `JaxBench`. Both are
``runtime_checkable``, so a test can check a class against its protocol on an instance.
Imports no framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from twinbench.canonical import Canonical
from twinbench.spec import Batch, OptimizerConfig


class Activation(NamedTuple):
    """A submodule's output on its first call, in the JAX twin's layout (NHWC images), and its
    input when it took a single array and the framework records inputs (None otherwise)."""

    output: np.ndarray
    input: np.ndarray | None


@runtime_checkable
class Runner(Protocol):
    """One twin of a workload, loaded with canonical weights, for the parity checks."""

    framework: str

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy canonical weights (parameters and running statistics) into the model."""
        ...

    def weights(self) -> Canonical:
        """The model's parameters and running statistics, canonical."""
        ...

    def statistics(self) -> Canonical:
        """Only the running statistics (BatchNorm means and variances), canonical."""
        ...

    def set_mode(self, train: bool) -> None:
        """Train mode (batch statistics, dropout on) or eval mode."""
        ...

    def outputs(self, batch: Batch) -> np.ndarray:
        """The twin's forward outputs for ``batch``, float32."""
        ...

    def loss_and_grads(self, batch: Batch) -> tuple[float, Canonical]:
        """The loss on ``batch`` and every parameter's gradient, canonical."""
        ...

    def train_curve(self, batches: list[Batch], config: OptimizerConfig) -> list[float]:
        """Loss before each of ``len(batches)`` optimizer steps, one batch per step."""
        ...

    def activations(self, batch: Batch) -> dict[str, Activation]:
        """Each submodule's activation, by canonical module name, in the order they finished."""
        ...

    def apply_layer(self, name: str, x: np.ndarray) -> np.ndarray:
        """Run the submodule ``name`` alone on ``x`` (both in the JAX twin's layout)."""
        ...


@runtime_checkable
class Bench(Protocol):
    """One timing cell's side: model, optimizer and batches on the device, a step to time."""

    def compile(self) -> float | None:
        """Compile the step ahead of time and return the seconds it took; None if the mode
        compiles on the first call or not at all."""
        ...

    def step(self) -> object:
        """Run one step on the next batch; returns what `sync` waits for."""
        ...

    def sync(self, out: object = None) -> None:
        """Wait until ``out`` (or all queued device work) is done."""
        ...

    def flops_per_step(self) -> float | None:
        """FLOPs of one step as the framework counts them; None where it cannot."""
        ...

    def peak_device_memory(self) -> int | None:
        """Peak device memory in bytes so far; None where the device does not say."""
        ...

    def state_bytes(self) -> int:
        """Bytes of the arrays the step keeps from one step to the next: parameters and
        buffers, gradients kept between steps, optimizer state, and one batch."""
        ...
