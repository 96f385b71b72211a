"""PyTorch's ways through a schedule of changing shapes: eager, and torch.compile three ways.

The training step is the one a PyTorch user writes: zero the gradients, the loss, backward,
step. What is compiled is the loss (the model's forward and the masked cross-entropy); AOTAutograd
compiles its backward with it; the optimizer step stays eager. Serving (`Inference`) runs the
same compiled loss forward only, under ``torch.inference_mode``, its value the summary of each
step's outputs that the suite compares. ``dynamic=None`` is
torch.compile's default: it specialises on the first shape, and on the first recompile marks
the changed dimension dynamic. ``dynamic=True`` traces symbolic shapes from the start;
``mark_dynamic`` says up front which dimension varies; ``dynamic=False`` (the bucketed strategy)
compiles one graph per padded shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import torch
import torch._dynamo
import torch.nn.functional as F

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import load_canonical, make_optimizer, to_device
from twinbench.dynamic.counters import TorchCompileCounter
from twinbench.dynamic.schedule import varies
from twinbench.dynamic.settings import Strategy, TrainerOptions
from twinbench.spec import Batch, Size, Workload

NAME = "torch"
DYNAMIC = {"auto": None, "dynamic": True, "mark": None, "static": False}


def configure(threads: int) -> None:
    """Use the worker's thread budget (0: torch's default)."""
    if threads:
        torch.set_num_threads(threads)


Loss = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def masked_loss(workload: Workload, model: torch.nn.Module, *, leak_padding: bool) -> Loss:
    """The loss over the real positions or rows only (``leak_padding``: over all of them, or
    the encoder's attention over all of them, the planted mask bug); a workload without a mask
    runs on its twin's own loss."""
    twin = workload.twin("torch")

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "mask" not in batch:
            plain: torch.Tensor = twin.loss_fn(model, batch)
            return plain
        if "labels" in batch:  # one label per sequence: the twin masks its own attention
            seen = {k: v for k, v in batch.items() if k != "mask"} if leak_padding else batch
            classified: torch.Tensor = twin.loss_fn(model, seen)
            return classified
        if "tokens" in batch:
            logits = twin.forward(model, {"tokens": batch["tokens"]})  # (B, T, vocab)
            targets = batch["targets"]
            per_item = F.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), reduction="none"
            ).view_as(targets)
        else:  # rows: the mlp's mean squared error or cross-entropy, per row
            outputs = twin.forward(model, {"x": batch["x"]})
            y = batch["y"]
            if y.is_floating_point():
                per_item = (outputs - y).square().flatten(1).mean(1)
            else:
                per_item = F.cross_entropy(outputs, y, reduction="none")
        if leak_padding:
            return per_item.mean()
        mask = batch["mask"]  # (B, T) per position, or (B,) per row: spread over its positions
        mask = mask.view(*mask.shape, *[1] * (per_item.dim() - mask.dim())).expand_as(per_item)
        return (per_item * mask).sum() / mask.sum()

    return loss


class _Loaded:
    """A model with the canonical init and one strategy's loss: eager, or torch.compile'd."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        self.axis = options["axis"]  # the varying dimension, which mark_dynamic names
        self.counter = TorchCompileCounter()
        self.model = workload.twin("torch").build(size.config)
        load_canonical(
            self.model, initial_weights(workload, size, options["seed"], framework="torch")
        )
        loss = masked_loss(workload, self.model, leak_padding=options["leak_padding"])
        self._mark = strategy.compile == "mark"
        if strategy.compile == "none":
            self._loss = loss
        else:
            self._loss = torch.compile(
                loss, dynamic=DYNAMIC[strategy.compile], backend=options["backend"]
            )

    def _tensors(self, batch: Batch) -> dict[str, torch.Tensor]:
        tensors = to_device(batch, "cpu", torch.float32)
        if self._mark:  # only what changes: a dimension marked but constant is an error
            for key, tensor in tensors.items():
                if varies(key, self.axis) and tensor.dim() > self.axis:
                    torch._dynamo.mark_dynamic(tensor, self.axis)
        return tensors

    def extras(self) -> dict[str, Any]:
        """Dynamo's graph breaks by reason (none for eager) and why it compiled again."""
        return {
            "graph_breaks": self.counter.graph_breaks(),
            "recompile_reasons": self.counter.recompile_reasons(),
        }


class Trainer(_Loaded):
    """A model, its optimizer and one strategy's training step."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        super().__init__(workload, size, strategy, **options)
        self.model.train()
        self._optimizer = make_optimizer(
            self.model.parameters(), workload.optimizers[workload.train_optimizer]
        )

    def step(self, batch: Batch) -> float:
        """One optimizer step on ``batch``; its loss (a float, so the step has finished)."""
        tensors = self._tensors(batch)
        self._optimizer.zero_grad(set_to_none=True)
        loss = self._loss(tensors)
        loss.backward()  # type: ignore[no-untyped-call]
        self._optimizer.step()
        return float(loss.detach())


class Inference(_Loaded):
    """A model serving requests: one strategy's forward pass, in eval mode, under
    ``torch.inference_mode`` (no autograd records kept)."""

    def __init__(
        self, workload: Workload, size: Size, strategy: Strategy, **options: Unpack[TrainerOptions]
    ) -> None:
        super().__init__(workload, size, strategy, **options)
        self.model.eval()

    def step(self, batch: Batch) -> float:
        """The forward pass on ``batch``; its outputs' summary, the loss of the real rows (a
        float, so the step has finished)."""
        tensors = self._tensors(batch)
        with torch.inference_mode():
            return float(self._loss(tensors))
