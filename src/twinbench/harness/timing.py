"""The timing loop that runs inside a cell's subprocess. Imports no framework.

Steps are timed in blocks: a block runs ``k`` steps and synchronises once, so a step far shorter
than the timer's resolution is still measured accurately and the timer's own cost (≈0.1 µs for
``perf_counter`` plus one synchronisation) stays under 0.1 % of what it times, as
``torch.utils.benchmark``'s ``blocked_autorange`` does. Each sample is one block's time divided
by ``k``: the mean step time within that block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import perf_counter
from typing import Any

MIN_BLOCK_SECONDS = 0.01  # ≥ 1000× the cost of a timer read and a sync
MAX_BLOCK_STEPS = 10_000
WARMUP_SECONDS = 0.3
WARMUP_MIN_STEPS = 3

Step = Callable[[], Any]
Sync = Callable[[Any], None]


def run_steps(step: Step, sync: Sync, count: int) -> float:
    """Seconds for ``count`` steps followed by one synchronisation."""
    start = perf_counter()
    out = None
    for _ in range(count):
        out = step()
    sync(out)
    return perf_counter() - start


def warm_up(step: Step, sync: Sync) -> int:
    """Run steps until caches, allocators and lazy compilation have settled; returns the count."""
    steps, spent = 0, 0.0
    while steps < WARMUP_MIN_STEPS or spent < WARMUP_SECONDS:
        spent += run_steps(step, sync, 1)
        steps += 1
    return steps


def calibrate_block(step: Step, sync: Sync) -> int:
    """Steps per block so that one block lasts at least ``MIN_BLOCK_SECONDS``."""
    block = 1
    while block < MAX_BLOCK_STEPS:
        elapsed = run_steps(step, sync, block)
        if elapsed >= MIN_BLOCK_SECONDS:
            break
        block = min(
            MAX_BLOCK_STEPS,
            max(block * 2, math.ceil(block * MIN_BLOCK_SECONDS / max(elapsed, 1e-9))),
        )
    return block


def time_blocks(step: Step, sync: Sync, block: int, seconds: float) -> list[float]:
    """Per-step seconds, one sample per block, for about ``seconds`` (at least one block)."""
    samples: list[float] = []
    deadline = perf_counter() + seconds
    while not samples or perf_counter() < deadline:
        samples.append(run_steps(step, sync, block) / block)
    return samples
