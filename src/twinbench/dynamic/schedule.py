"""The shapes a schedule feeds the strategies: seeded lengths (or batch sizes), buckets, padded
batches and masks.

Every strategy of one run sees the same schedule: the same lengths in the same order, cut from
the same batches. A strategy that pads gets each batch padded on the right up to its bucket, with
a mask that is 1 on the real positions; its loss averages over the mask only, so padding changes
neither the loss nor the gradients (the causal model's real positions never attend to the padded
ones on their right; the encoder takes the mask into its attention). Imports no framework.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from twinbench.spec import Batch, Size

LOGNORMAL_SIGMA = 0.6  # a realistic spread of text lengths: most short, a long tail
MIN_LENGTH = 2


def max_length(size: Size) -> int:
    """The longest sequence ``size`` can take: its position table, else its preset length."""
    return int(size.config.get("max_positions", size.config["seq_len"]))


def draw_lengths(dist: str, steps: int, longest: int, seed: int) -> list[int]:
    """``steps`` lengths from ``dist``: ``lognormal`` (median a quarter of ``longest``, clipped
    to [2, longest]), ``uniform`` on [2, longest], or explicit lengths ``"12,30,7"`` cycled."""
    rng = np.random.default_rng(seed)
    if dist == "lognormal":
        drawn = rng.lognormal(math.log(longest / 4), LOGNORMAL_SIGMA, steps)
        return [int(n) for n in np.clip(np.rint(drawn), MIN_LENGTH, longest)]
    if dist == "uniform":
        return [int(n) for n in rng.integers(MIN_LENGTH, longest + 1, steps)]
    given = explicit_lengths(dist)
    return [given[i % len(given)] for i in range(steps)]


def explicit_lengths(dist: str) -> list[int]:
    """The lengths of ``"12,30,7"``; ValueError when ``dist`` is not such a list."""
    return [int(part) for part in dist.split(",") if part.strip()]


def bucket_of(length: int, bucket: int | None, longest: int) -> int:
    """The padded length: the next power of two (``bucket`` None) or multiple of ``bucket``,
    never past ``longest``."""
    if bucket is None:
        padded = 1 << max(length - 1, 0).bit_length()
    else:
        padded = -(-length // bucket) * bucket
    return min(padded, longest)


def padded_lengths(
    lengths: Sequence[int], padding: str, bucket: int | None, longest: int
) -> list[int]:
    """What each step computes on: the length itself, its bucket, or ``longest``."""
    if padding == "bucket":
        return [bucket_of(n, bucket, longest) for n in lengths]
    if padding == "max":
        return [longest] * len(lengths)
    return list(lengths)


def padding_share(lengths: Sequence[int], padded: Sequence[int]) -> float:
    """The share of computed positions that were padding."""
    return 1.0 - sum(lengths) / sum(padded)


SEQUENCE_KEYS = ("tokens", "targets", "mask", "x")  # the arrays `sequence_batches` cuts


def varies(key: str, axis: int) -> bool:
    """Whether the schedule changes array ``key``'s size on ``axis``: every array's rows; of a
    sequence batch only the arrays cut to its length, not a label or the target after a window
    (the lstm's ``y``: its horizon is fixed)."""
    return axis == 0 or key in SEQUENCE_KEYS


def sequence_batches(
    full: Iterator[Batch], lengths: Sequence[int], padded: Sequence[int]
) -> Iterator[Batch]:
    """Each step's batch: the next full-length batch cut to its length, padded to ``padded``.

    Token workloads (``tokens`` and ``targets``, or a sequence's ``labels``; the sequence on
    axis 1) keep the first ``length`` positions and get a ``mask``; windowed series (``x`` with
    the target after the window) keep the last ``length`` steps, so the target still follows
    the window.
    """
    for length, pad in zip(lengths, padded, strict=True):
        batch = next(full)
        if "tokens" in batch:
            yield _padded_tokens(batch, length, pad)
        else:
            yield {**batch, "x": batch["x"][:, -length:]}


def row_batches(
    full: Iterator[Batch], sizes: Sequence[int], padded: Sequence[int]
) -> Iterator[Batch]:
    """Each step's batch: the first ``size`` rows of the next full batch, padded with zero rows
    to ``padded`` and a ``mask`` (rows,) that is 1 on the real ones (serving traffic, an
    epoch's last partial batch)."""
    for rows, pad in zip(sizes, padded, strict=True):
        batch = next(full)
        out: Batch = {"mask": np.zeros(pad, np.float32)}
        out["mask"][:rows] = 1.0
        for key, array in batch.items():
            grown = np.zeros((pad, *array.shape[1:]), array.dtype)
            grown[:rows] = array[:rows]
            out[key] = grown
        yield out


def _padded_tokens(batch: Batch, length: int, pad: int) -> Batch:
    rows = batch["tokens"].shape[0]
    out: Batch = {**batch, "mask": np.zeros((rows, pad), np.float32)}  # labels (B,) unchanged
    out["mask"][:, :length] = 1.0
    for key in ("tokens", "targets") if "targets" in batch else ("tokens",):
        padded = np.zeros((rows, pad), batch[key].dtype)  # token 0 on padding: any id will do
        padded[:, :length] = batch[key][:, :length]
        out[key] = padded
    return out
