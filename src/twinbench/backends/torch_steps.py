"""A PyTorch twin's training and inference steps, as each side that runs a twin writes them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from twinbench.spec import TwinModule

Step = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def train_step(twin: TwinModule, model: nn.Module, optimizer: torch.optim.Optimizer) -> Step:
    """One optimizer step on ``model``; returns the detached loss (what is timed and compiled)."""

    def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = twin.loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        detached: torch.Tensor = loss.detach()
        return detached

    return step


def predict_step(twin: TwinModule, model: nn.Module) -> Step:
    """The model's outputs for one batch, without autograd."""

    def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            outputs: torch.Tensor = twin.forward(model, batch)
        return outputs

    return step
