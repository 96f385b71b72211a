"""MLPerf's time-to-train score over seeds: drop the fastest and the slowest, take the median.

A seed that never met its target counts as infinitely slow, so it is never dropped silently: one
such seed is the slowest and falls away; two or more leave an infinite time among the kept
ones, and then the score is a median that may itself be "not converged". The confidence
interval of the median is `twinbench.harness.stats`'s bootstrap over the kept times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinbench.harness.stats import Ratio, ratio_of_medians, summarize

DROP_FROM = 3  # with fewer seeds nothing is dropped: there would be nothing left


@dataclass(frozen=True)
class Score:
    """The median time to target of the kept seeds, its CI, and which times were kept."""

    median: float  # inf when the median seed did not converge
    ci_low: float
    ci_high: float
    kept: tuple[float, ...]
    converged: int
    seeds: int

    @property
    def finite(self) -> bool:
        """True when every kept seed converged, so the median and its CI are times."""
        return all(math.isfinite(t) for t in self.kept)


def kept_times(times: Sequence[float | None]) -> list[float]:
    """The times MLPerf keeps: sorted, the fastest and the slowest dropped (from 3 seeds on);
    None (not converged) counts as infinitely slow."""
    ordered = sorted(math.inf if t is None else float(t) for t in times)
    return ordered[1:-1] if len(ordered) >= DROP_FROM else ordered


def score(times: Sequence[float | None]) -> Score:
    """The MLPerf score of ``times`` (one per seed, None where the seed did not converge)."""
    if not times:
        raise ValueError("no seeds to score")
    kept = kept_times(times)
    converged = sum(t is not None for t in times)
    if all(math.isfinite(t) for t in kept):
        summary = summarize(kept)
        low, high, median = summary.ci_low, summary.ci_high, summary.median
    else:
        median = float(np.median(kept))  # inf once the middle is a seed that did not converge
        low, high = kept[0], math.inf
    return Score(median, low, high, tuple(kept), converged, len(times))


def ratio(slower: Score, faster: Score) -> Ratio | None:
    """slower / faster median time with a bootstrap CI; None unless both are finite."""
    if not (slower.finite and faster.finite):
        return None
    return ratio_of_medians(list(slower.kept), list(faster.kept))
