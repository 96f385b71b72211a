"""``lstm`` in PyTorch: ``nn.LSTM`` (cuDNN's fused kernel on GPU) → Linear on the last step."""

from collections.abc import Mapping
from typing import Any

from torch import nn

from twinbench.workloads._forecaster_torch import Forecaster, forward, loss_fn, rnn_arguments

__all__ = ["build", "forward", "loss_fn"]


def build(config: Mapping[str, Any]) -> Forecaster:
    return Forecaster("lstm", nn.LSTM(**rnn_arguments(config)), config["horizon"])
