"""What the ``lstm`` and ``gru`` workloads share: the whole spec but the recurrent cell.

The task: from a window of ``seq_len`` steps of ``features`` noisy channels, forecast the next
``horizon`` clean values of channel 0. Every channel is a fixed mixture of ``WAVES`` sines whose
frequencies and mixing weights are drawn once from the seed; each sample draws fresh phases. So
the window tells the model the phases, and the forecast is their continuation: learnable, and not
solvable by memorising.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from twinbench.spec import Batch, Size, WorkloadSpec, package_twins, require_at_least, sgd_and_adam

WAVES = 3  # sines per channel
NOISE = 0.1  # std of the noise on the input window (the target is clean)
DIMENSIONS = ("hidden", "layers", "seq_len", "features", "horizon")  # each at least one


def forecasting_workload(package: str, *, cell: str, gates: int) -> WorkloadSpec:
    """The forecasting workload of the stacked ``cell`` net (``LSTM``, ``GRU``) with ``gates`` gate
    blocks, whose twins are ``package``'s; named after the cell in lower case."""
    return WorkloadSpec(
        name=cell.lower(),
        description=f"stacked {cell} forecasting noisy sums of sines (last hidden state -> Linear)",
        sizes=sizes(),
        data=data,
        loss="mse",
        twins=package_twins(package),
        optimizers=sgd_and_adam(sgd_lr=0.05, adam_lr=5e-3),
        flops=flop_counter(gates),
        validate=validator(cell.lower()),
    )


def sizes(features: int = 4, horizon: int = 8) -> dict[str, Size]:
    """The tiny / small / full presets (seq_len in the config, so sweeps can change it)."""
    presets = {  # name: (hidden, layers, seq_len, batch)
        "tiny": (16, 1, 20, 8),
        "small": (256, 2, 100, 64),
        "full": (1024, 2, 256, 128),
    }
    return {
        name: Size(
            name,
            {
                "seq_len": seq_len,
                "hidden": hidden,
                "layers": layers,
                "features": features,
                "horizon": horizon,
            },
            batch_size=batch,
            tokens_per_sample=seq_len,
        )
        for name, (hidden, layers, seq_len, batch) in presets.items()
    }


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """Batches ``x (B, seq_len, features)`` float32 and ``y (B, horizon)`` float32, forever."""
    config = size.config
    seq_len, features, horizon = config["seq_len"], config["features"], config["horizon"]
    n = size.batch_size
    freqs = rng.uniform(0.05, 0.5, WAVES)  # radians per step: periods of about 13 to 125 steps
    mixing = rng.standard_normal((features, WAVES))
    mixing *= np.sqrt(2.0) / np.linalg.norm(mixing, axis=1, keepdims=True)  # unit variance
    t = np.arange(seq_len + horizon)
    while True:
        phases = rng.uniform(0.0, 2.0 * np.pi, (n, WAVES))
        waves = np.sin(freqs[None, :, None] * t + phases[:, :, None])  # (B, WAVES, T + horizon)
        clean = np.einsum("cw,bwt->btc", mixing, waves)  # (B, T + horizon, features)
        x = clean[:, :seq_len] + NOISE * rng.standard_normal((n, seq_len, features))
        y = clean[:, seq_len:, 0]
        yield {"x": x.astype(np.float32), "y": y.astype(np.float32)}


def validator(name: str) -> Callable[[Size], None]:
    """``validate`` for a recurrent workload: every dimension must be at least one."""

    def validate(size: Size) -> None:
        """Refuse a config with a dimension below one."""
        require_at_least(name, size.config, DIMENSIONS, 1)

    return validate


def flop_counter(gates: int) -> Callable[[Size], float]:
    """``flops`` for a stacked recurrent net with ``gates`` gate blocks (LSTM 4, GRU 3)."""

    def flops(size: Size) -> float:
        """Matmul FLOPs of one training step (2 per multiply-add; gates' elementwise excluded).

        Forward, with G = gates, H = hidden, B = batch, T = seq_len, F = features, L = layers::

            2·B·T·G·H·(F + H)                 layer 0 (input and hidden projections)
          + (L-1)·2·B·T·G·H·(H + H)           layers 1..L-1
          + 2·B·H·horizon                     head on the last hidden state

        Backward doubles it (weight gradient + input gradient), except that no input gradient
        is taken for the data: train step = 3·forward − 2·B·T·G·H·F.

        Checked against torch's FlopCounterMode (tests/workloads/test_flops.py; 0.986–0.998 for
        the GRU, 1.07 at tiny and 1.002 at small for the LSTM, whose oneDNN kernel computes the
        data's input gradient too). XLA's ``cost_analysis()`` counts a while loop's body once,
        not once per step (jax-ml/jax#18672), so the harness withholds its figure for these
        twins; with the scan unrolled it agrees at small (seq_len 20: 1.06 LSTM, 1.03 GRU).
        """
        c = size.config
        b, t, g, h = size.batch_size, c["seq_len"], gates, c["hidden"]
        f, layers, horizon = c["features"], c["layers"], c["horizon"]
        forward = 2 * b * t * g * h * (f + h) + (layers - 1) * 2 * b * t * g * h * 2 * h
        forward += 2 * b * h * horizon
        return float(3 * forward - 2 * b * t * g * h * f)

    return flops
