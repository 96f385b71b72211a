"""A task's PyTorch twin trained for time to target: eager or torch.compile.

The twin loads the one canonical init; each step moves the pipeline's NumPy batch to the
device (timed: the pipeline is part of training) and runs zero_grad → loss → backward → step.
Under ``torch-compile`` the train step and the evaluation forward are each one compiled
function, compiled on their first call (so compile time falls inside time to target).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import load_canonical, make_optimizer, to_device
from twinbench.backends.torch_steps import predict_step, train_step
from twinbench.converge.tasks import Task
from twinbench.spec import Batch, image_keys_of

NAME = "torch"


def configure(threads: int) -> None:
    """The worker's thread budget for torch's intra- and inter-op pools; fp32 matmuls exact."""
    if threads:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    torch.set_float32_matmul_precision("highest")
    # torch.optim imports Dynamo when the first optimizer is made (seconds): an import, done
    # before the clock starts like the framework's own, in eager mode as in compiled.
    importlib.import_module("torch._dynamo")


class Trainer:
    """The model, its optimizer and the two steps a converge run calls."""

    def __init__(self, task: Task, *, seed: int, mode: str) -> None:
        workload = task.workload()
        twin = workload.twin("torch")
        self.model = model = twin.build(task.size.config)
        load_canonical(model, initial_weights(workload, task.size, seed, framework="torch"))
        optimizer = make_optimizer(model.parameters(), task.optimizer)
        self.image_keys = image_keys_of(workload)

        train, predict = train_step(twin, model, optimizer), predict_step(twin, model)
        compiled = mode == "torch-compile"
        self._train = torch.compile(train) if compiled else train
        self._predict = torch.compile(predict) if compiled else predict

    def _on_device(self, batch: Batch) -> dict[str, torch.Tensor]:
        return to_device(batch, "cpu", torch.float32, self.image_keys)

    def step(self, batch: Batch) -> torch.Tensor:
        self.model.train()
        return self._train(self._on_device(batch))

    def predict(self, batch: Batch) -> np.ndarray:
        self.model.eval()
        return self._predict(self._on_device(batch)).numpy()

    def sync(self, _out: Any = None) -> None:
        """CPU kernels finish before they return: nothing to wait for."""

    def value(self, loss: torch.Tensor) -> float:
        return float(loss)
