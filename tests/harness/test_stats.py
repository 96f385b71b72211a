import math
import warnings

import numpy as np
import pytest

from twinbench.harness.stats import (
    Ratio,
    Summary,
    is_converged,
    mann_whitney_p,
    ratio_of_medians,
    summarize,
)


def test_median_and_iqr_of_small_sample() -> None:
    # sorted: [1, 2, 3, 4, 5, 7, 10]; median is the 4th value; linear-interpolated quartiles
    # sit at positions 1.5 (2.5) and 4.5 (6.0), so IQR = 3.5
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0])
    assert s.median == 4.0
    assert s.iqr == pytest.approx(3.5)
    assert s.n == 7
    assert 1.0 <= s.ci_low <= 4.0 <= s.ci_high <= 10.0


def test_ci_contains_true_median_with_expected_width() -> None:
    n = 2000
    samples = np.random.default_rng(42).normal(loc=10.0, scale=1.0, size=n)
    s = summarize(samples.tolist())
    assert s.ci_low < 10.0 < s.ci_high
    # asymptotic standard error of a normal sample's median is sqrt(pi/2) * sigma / sqrt(n)
    expected_halfwidth = 1.2533 * 1.96 / math.sqrt(n)
    assert (s.ci_high - s.ci_low) / 2 == pytest.approx(expected_halfwidth, rel=0.3)


def test_identical_samples_give_degenerate_ci_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize([0.25] * 20)
        nearly = summarize([1.0] * 19 + [2.0])
    assert (s.median, s.iqr, s.ci_low, s.ci_high) == (0.25, 0.0, 0.25, 0.25)
    assert s.ci_halfwidth_rel == 0.0
    assert nearly.ci_low == nearly.ci_high == 1.0


def test_few_samples_use_min_max_as_ci() -> None:
    one = summarize([3.0])
    assert (one.median, one.ci_low, one.ci_high, one.n) == (3.0, 3.0, 3.0, 1)
    two = summarize([2.0, 1.0])
    assert (two.median, two.ci_low, two.ci_high) == (1.5, 1.0, 2.0)
    with pytest.raises(ValueError):
        summarize([])


def test_summarize_is_reproducible_per_seed() -> None:
    samples = np.random.default_rng(3).lognormal(size=50).tolist()
    assert summarize(samples, seed=5) == summarize(samples, seed=5)


def test_ci_halfwidth_rel_uses_the_wider_side() -> None:
    s = Summary(median=2.0, iqr=0.1, ci_low=1.9, ci_high=2.3, n=10)
    assert s.ci_halfwidth_rel == pytest.approx(0.3 / 2.0)


def test_is_converged() -> None:
    rng = np.random.default_rng(7)
    tight = rng.normal(1.0, 0.01, size=500).tolist()
    assert is_converged(summarize(tight))
    assert not is_converged(summarize(tight[:5]))  # too few samples, however tight
    assert not is_converged(summarize(rng.lognormal(0.0, 1.0, size=50).tolist()))
    assert is_converged(summarize(tight[:5]), min_samples=5)


def test_noisy_flag() -> None:
    assert Summary(median=1.0, iqr=0.11, ci_low=1.0, ci_high=1.0, n=10).noisy
    assert not Summary(median=1.0, iqr=0.09, ci_low=1.0, ci_high=1.0, n=10).noisy
    rng = np.random.default_rng(11)
    assert summarize(rng.uniform(0.5, 1.5, size=200).tolist()).noisy  # IQR ~ 0.5
    assert not summarize(rng.normal(1.0, 0.01, size=200).tolist()).noisy  # IQR ~ 0.0135


def test_ratio_of_medians_detects_a_2x_difference() -> None:
    rng = np.random.default_rng(1)
    a = (2.0 * rng.gamma(shape=20.0, size=300)).tolist()
    b = rng.gamma(shape=20.0, size=300).tolist()
    r = ratio_of_medians(a, b)
    assert r.ratio == pytest.approx(2.0, rel=0.1)
    assert r.ci_low <= r.ratio <= r.ci_high
    assert r.ci_low > 1.0
    assert r.significant


def test_ratio_of_medians_same_distribution_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    r = ratio_of_medians(rng.gamma(20.0, size=300).tolist(), rng.gamma(20.0, size=300).tolist())
    assert r.ci_low <= 1.0 <= r.ci_high
    assert not r.significant


def test_ratio_of_medians_is_reproducible_per_seed() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(size=40).tolist(), rng.lognormal(size=40).tolist()
    assert ratio_of_medians(a, b, seed=9) == ratio_of_medians(a, b, seed=9)
    assert ratio_of_medians(a, b, seed=9) != ratio_of_medians(a, b, seed=10)


def test_ratio_with_a_single_sample_has_a_point_ci() -> None:
    assert ratio_of_medians([2.0], [1.0, 1.0, 3.0]) == Ratio(2.0, 2.0, 2.0)
    assert ratio_of_medians([2.0], [1.0, 1.0, 3.0]).significant
    assert not ratio_of_medians([1.0], [1.0]).significant


def test_mann_whitney_p() -> None:
    # all 3 values of a below all of b: 1 of C(6, 3) = 20 orderings per tail, two-sided 2/20
    assert mann_whitney_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    rng = np.random.default_rng(5)
    base = rng.normal(size=100).tolist()
    shifted = (rng.normal(size=100) + 1.0).tolist()
    same = rng.normal(size=100).tolist()
    assert mann_whitney_p(base, shifted) < 1e-6
    # a fresh draw from the same distribution fails p > 0.01 for only 1% of seeds
    assert mann_whitney_p(base, same) > 0.01
    # a reordered copy has U exactly at its null mean
    assert mann_whitney_p(base, base[::-1]) == pytest.approx(1.0)
