"""``lstm`` in PyTorch: ``nn.LSTM`` (cuDNN's fused kernel on GPU) → Linear on the last step."""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Forecaster(nn.Module):
    def __init__(self, features: int, hidden: int, layers: int, horizon: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, features) -> (B, horizon)
        out, _ = self.lstm(x)  # (B, T, H), the top layer's hidden states
        return self.head(out[:, -1])


def build(config: Mapping[str, Any]) -> Forecaster:
    return Forecaster(config["features"], config["hidden"], config["layers"], config["horizon"])


def forward(model: Forecaster, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(batch["x"])


def loss_fn(model: Forecaster, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(model(batch["x"]), batch["y"])
