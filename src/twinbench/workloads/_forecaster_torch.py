"""The PyTorch side of ``lstm`` and ``gru``: a stacked recurrent net → Linear on the last step.

Each twin builds its ``nn.LSTM`` / ``nn.GRU`` (cuDNN's fused kernel on GPU) and hands it to
`Forecaster`, which keeps it under the workload's name, so canonical names read
``lstm.weight_ih_l0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Forecaster(nn.Module):
    def __init__(self, name: str, rnn: nn.LSTM | nn.GRU, horizon: int) -> None:
        super().__init__()
        self.rnn_name = name
        self.add_module(name, rnn)
        self.head = nn.Linear(rnn.hidden_size, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, features) -> (B, horizon)
        out, _ = getattr(self, self.rnn_name)(x)  # (B, T, H), the top layer's hidden states
        forecast: torch.Tensor = self.head(out[:, -1])
        return forecast


def rnn_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """``nn.LSTM`` / ``nn.GRU`` keyword arguments for the config: batch-first, ``layers`` deep."""
    return {
        "input_size": config["features"],
        "hidden_size": config["hidden"],
        "num_layers": config["layers"],
        "batch_first": True,
    }


def forward(model: Forecaster, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    forecast: torch.Tensor = model(batch["x"])
    return forecast


def loss_fn(model: Forecaster, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(forward(model, batch), batch["y"])
