"""``mlp`` in PyTorch: Linear → ReLU → … → Linear."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, features: Sequence[int], task: str) -> None:
        super().__init__()
        self.task = task
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out) for d_in, d_out in zip(features[:-1], features[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        out: torch.Tensor = self.layers[-1](x)
        return out


def build(config: Mapping[str, Any]) -> MLP:
    return MLP(config["features"], config["task"])


def forward(model: MLP, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out: torch.Tensor = model(batch["x"])
    return out


def loss_fn(model: MLP, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = forward(model, batch)
    if model.task == "classify":
        return F.cross_entropy(out, batch["y"])
    return F.mse_loss(out, batch["y"])
