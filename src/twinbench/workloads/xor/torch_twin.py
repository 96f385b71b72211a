"""``xor`` in PyTorch: Linear → tanh → Linear, BCE on the logits."""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class XorNet(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(2, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 2) -> logits (N, 1)
        logits: torch.Tensor = self.out(torch.tanh(self.hidden(x)))
        return logits


def build(config: Mapping[str, Any]) -> XorNet:
    return XorNet(config["hidden"])


def forward(model: XorNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits: torch.Tensor = model(batch["x"])
    return logits


def loss_fn(model: XorNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(forward(model, batch), batch["y"])
