"""``linreg`` in PyTorch: one Linear layer, mean squared error."""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class LinearRegression(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, features) -> (N, 1)
        y: torch.Tensor = self.linear(x)
        return y


def build(config: Mapping[str, Any]) -> LinearRegression:
    return LinearRegression(config["features"])


def forward(model: LinearRegression, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    y: torch.Tensor = model(batch["x"])
    return y


def loss_fn(model: LinearRegression, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(forward(model, batch), batch["y"])
