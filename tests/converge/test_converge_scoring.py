"""MLPerf's rule on known times: drop the fastest and the slowest, median of the rest; a seed
that did not converge counts as slowest and is never dropped silently."""

from __future__ import annotations

import math

import pytest

from twinbench.converge.scoring import kept_times, ratio, score


def test_extremes_dropped_then_median() -> None:
    times = [5.0, 1.0, 3.0, 40.0, 2.0]
    assert kept_times(times) == [2.0, 3.0, 5.0]
    result = score(times)
    assert result.median == 3.0  # the median of 2, 3, 5 — not the mean 10.2 of all five
    assert result.ci_low >= 2.0 and result.ci_high <= 5.0
    assert result.converged == 5 and result.finite


def test_one_seed_not_converged_is_the_slowest_and_dropped() -> None:
    result = score([4.0, None, 1.0, 2.0, 3.0])
    assert result.kept == (2.0, 3.0, 4.0)
    assert result.median == 3.0 and result.converged == 4 and result.finite


def test_two_seeds_not_converged_leave_an_open_interval() -> None:
    result = score([1.0, None, None, 2.0, 3.0])
    assert result.kept[:2] == (2.0, 3.0) and math.isinf(result.kept[2])
    assert result.median == 3.0 and math.isinf(result.ci_high) and not result.finite


def test_most_seeds_not_converged_scores_infinite() -> None:
    assert math.isinf(score([1.0, None, None, None, 2.0]).median)


def test_fewer_than_three_seeds_keep_all() -> None:
    assert kept_times([2.0, 1.0]) == [1.0, 2.0]
    assert score([2.0]).median == 2.0


def test_ratio_needs_finite_scores() -> None:
    slow, fast = score([4.0, 4.2, 3.9, 4.1, 4.0]), score([2.0, 2.1, 1.9, 2.0, 2.05])
    r = ratio(slow, fast)
    assert r is not None and r.ratio == pytest.approx(2.0, rel=0.03) and r.significant
    assert ratio(score([1.0, None, None]), fast) is None
