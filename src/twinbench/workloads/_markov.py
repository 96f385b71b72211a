"""The sparse Markov chains the ``gpt`` and ``bert`` token streams walk.

Each token of a chain has `SUCCESSORS` possible next tokens, taken with the peaked probabilities
`TRANSITION` (next-token entropy ≈ 1.03 nats, far below log(vocab)): a model that learns a chain's
successor table predicts its next token well. The specs draw the tables; this module walks them.
"""

from __future__ import annotations

import numpy as np

SUCCESSORS = 4  # possible next tokens per token, per chain
TRANSITION = np.array([0.6, 0.25, 0.1, 0.05])  # their probabilities


def successor_choices(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Which of its `SUCCESSORS` each step takes (ints in [0, SUCCESSORS)), by `TRANSITION`."""
    choices = np.searchsorted(np.cumsum(TRANSITION), rng.random(shape), side="right")
    return np.minimum(choices, SUCCESSORS - 1)  # guards the rounding of the cumulative sum's end


def walk(
    tables: np.ndarray, chains: np.ndarray, start: np.ndarray, choices: np.ndarray
) -> np.ndarray:
    """Token sequences (n, 1 + steps), int64, each row walking its own chain from ``start``.

    ``tables`` (n_chains, vocab, SUCCESSORS) holds each chain's successors, ``chains`` (n,) the
    chain of each row, ``start`` (n,) the first tokens and ``choices`` (n, steps) the successor
    each step takes.
    """
    n, steps = choices.shape
    tokens = np.empty((n, steps + 1), dtype=np.int64)
    tokens[:, 0] = start
    for t in range(steps):
        tokens[:, t + 1] = tables[chains, tokens[:, t], choices[:, t]]
    return tokens
