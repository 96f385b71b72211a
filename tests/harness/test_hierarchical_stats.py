"""The hierarchical bootstrap against cases whose answer is known by construction."""

import numpy as np
import pytest

from twinbench.harness.stats import (
    RERUN_WIDENING,
    Ratio,
    for_rerun,
    pooled_process_spread,
    process_spread,
    ratio_of_medians,
    ratio_of_medians_grouped,
    ratio_of_rounds,
    summarize,
    summarize_groups,
)


def _processes(rng, offsets, *, noise=0.01, n=60):
    """One group of samples per process: the process's own level plus within-process noise."""
    return [rng.normal(1.0 + offset, noise, n) for offset in offsets]


def _width(ratio):
    return ratio.ci_high - ratio.ci_low


def test_the_interval_widens_when_processes_disagree_and_not_when_they_agree():
    rng = np.random.default_rng(0)
    agree = _processes(rng, [0.0, 0.0, 0.0])
    disagree = _processes(rng, [-0.1, 0.0, 0.1])
    other = _processes(rng, [0.0, 0.0, 0.0])
    pooled = ratio_of_medians(np.concatenate(disagree), np.concatenate(other))
    wide = ratio_of_medians_grouped(disagree, other)
    narrow = ratio_of_medians_grouped(agree, other)
    # Processes 0.1 apart: the interval reaches across most of that spread, far beyond what
    # the pooled samples' noise alone would give.
    assert _width(wide) > 0.1
    assert _width(wide) > 10 * _width(pooled)
    # Processes that agree: the interval stays at the within-process noise (±~0.5 %).
    assert _width(narrow) < 0.01
    assert narrow.ci_low <= 1.0 <= narrow.ci_high


def test_it_covers_the_truth_when_the_pooled_bootstrap_does_not():
    """Both sides have the same true median; each process adds its own offset (sd 5 %).

    An interval that ignores processes claims a difference most of the time; the hierarchical
    one holds the true ratio 1 in most repetitions (the bootstrap of 5 groups is not exact).
    """
    rng = np.random.default_rng(1)
    hits_grouped = hits_pooled = 0
    trials = 60
    for _ in range(trials):
        a = _processes(rng, rng.normal(0, 0.05, 5), n=30)
        b = _processes(rng, rng.normal(0, 0.05, 5), n=30)
        grouped = ratio_of_medians_grouped(a, b, n_resamples=400)
        pooled = ratio_of_medians(np.concatenate(a), np.concatenate(b), n_resamples=400)
        hits_grouped += grouped.ci_low <= 1.0 <= grouped.ci_high
        hits_pooled += pooled.ci_low <= 1.0 <= pooled.ci_high
    assert hits_grouped / trials >= 0.8
    assert hits_pooled / trials <= 0.4


def test_one_process_per_side_is_the_ordinary_bootstrap():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 0.02, 40), rng.normal(1.1, 0.02, 40)
    assert ratio_of_medians_grouped([a], [b]) == ratio_of_medians(a, b)
    assert summarize_groups([a]) == summarize(a)


def test_summary_of_groups_pools_the_samples_and_widens_its_interval():
    rng = np.random.default_rng(3)
    groups = _processes(rng, [-0.05, 0.05])
    summary = summarize_groups(groups)
    pooled = np.concatenate(groups)
    assert summary.n == pooled.size
    assert summary.median == pytest.approx(float(np.median(pooled)))
    assert summary.ci_high - summary.ci_low > 0.05
    assert summary.ci_low <= summary.median <= summary.ci_high


def test_spread_is_the_range_of_the_process_medians():
    low, high = process_spread([[1.0, 1.2, 1.1], [2.0, 2.0], [0.5]])
    assert (low, high) == (0.5, 2.0)


def test_no_groups_or_an_empty_group_is_refused():
    with pytest.raises(ValueError, match="at least one group"):
        summarize_groups([])
    with pytest.raises(ValueError, match=r"a\[1\]"):
        ratio_of_medians_grouped([[1.0], []], [[1.0]])


def _cell(rng, level, sd, processes, n=40):
    """A cell whose processes' levels scatter around ``level`` by a relative sd of ``sd``."""
    levels = level * np.exp(rng.normal(0, sd, processes))
    return [rng.normal(mean, 0.002 * level, n) for mean in levels]


def test_the_pooled_spread_recovers_a_known_between_process_variance():
    rng = np.random.default_rng(4)
    cells = [_cell(rng, level, 0.05, 3) for level in rng.uniform(0.001, 1.0, 200)]
    spread = pooled_process_spread(cells)
    assert spread.df == 200 * 2
    assert spread.variance == pytest.approx(0.05**2, rel=0.15)
    # A cell measured in one process says nothing about how processes stray.
    assert pooled_process_spread([[[1.0, 1.1]], [[2.0]]]) is None


def test_two_processes_that_happen_to_agree_no_longer_claim_certainty():
    rng = np.random.default_rng(5)
    spread = pooled_process_spread([_cell(rng, 1.0, 0.05, 2) for _ in range(30)])
    agree_a, agree_b = _processes(rng, [0.0, 0.0]), _processes(rng, [0.04, 0.04])
    bootstrap = ratio_of_medians_grouped(agree_a, agree_b)
    honest = ratio_of_medians_grouped(agree_a, agree_b, spread=spread)
    assert bootstrap.significant  # 4 % apart with ±0.5 % noise inside each process
    assert not honest.significant  # processes 5 % apart are common on this machine
    assert honest.ratio == bootstrap.ratio
    assert honest.ci_low < bootstrap.ci_low and honest.ci_high > bootstrap.ci_high
    # No spread between processes anywhere: the interval stays the bootstrap's.
    calm = pooled_process_spread([_cell(rng, 1.0, 0.0, 2) for _ in range(30)])
    tight = ratio_of_medians_grouped(agree_a, agree_b, spread=calm)
    assert tight.significant
    assert tight.ci_high - tight.ci_low == pytest.approx(
        bootstrap.ci_high - bootstrap.ci_low, rel=0.5
    )


def test_with_the_pooled_spread_two_processes_a_side_cover_the_truth():
    """True ratio 1, processes 5 % apart, two per side: the bootstrap alone misses it often;
    with the spread of the run's other cells the interval holds it about 95 % of the time."""
    rng = np.random.default_rng(6)
    trials, hits_bootstrap, hits_pooled = 150, 0, 0
    for _ in range(trials):
        others = [_cell(rng, level, 0.05, 2, n=10) for level in rng.uniform(0.01, 1.0, 12)]
        a, b = _cell(rng, 1.0, 0.05, 2, n=20), _cell(rng, 1.0, 0.05, 2, n=20)
        spread = pooled_process_spread([*others, a, b])
        plain = ratio_of_medians_grouped(a, b, n_resamples=300)
        pooled = ratio_of_medians_grouped(a, b, n_resamples=300, spread=spread)
        hits_bootstrap += plain.ci_low <= 1.0 <= plain.ci_high
        hits_pooled += pooled.ci_low <= 1.0 <= pooled.ci_high
    assert hits_bootstrap / trials < 0.8
    assert hits_pooled / trials >= 0.9


def test_cells_timed_in_the_same_rounds_are_compared_round_by_round():
    """The machine ran 30 % slower in round 2 for both cells; each round's ratio is 1.3.

    One median over both rounds' pooled samples lands between the rounds and can say anything
    from about 1 to 1.7; round by round the drift cancels and the ratio is 1.3."""
    rng = np.random.default_rng(7)
    drift = [1.0, 1.3]
    # Sample counts differ between processes (a budget in seconds, a cell that converged early),
    # so each cell's pooled median sits in the round that gave it more samples.
    a = [rng.normal(1.3 * d, 0.002, n) for d, n in zip(drift, (40, 30), strict=True)]
    b = [rng.normal(1.0 * d, 0.002, n) for d, n in zip(drift, (30, 40), strict=True)]
    spread = pooled_process_spread([a, b])
    paired = ratio_of_rounds(a, b, spread)
    pooled = ratio_of_medians_grouped(a, b)
    assert paired.ratio == pytest.approx(1.3, rel=0.003)
    assert abs(pooled.ratio - 1.3) > 0.05
    assert paired.ci_low <= 1.3 <= paired.ci_high
    # A drift moves no estimate: the same cells without it give the same ratio.
    calm = ratio_of_rounds([a[0], a[1] / 1.3], [b[0], b[1] / 1.3], spread)
    assert calm.ratio == pytest.approx(paired.ratio, rel=0.003)


def test_round_by_round_the_interval_covers_the_truth():
    """True ratio 1; every round drifts both cells alike (sd 20 %), each process adds its own
    5 %: with the run's pooled spread the interval holds 1 in at least 90 % of trials."""
    rng = np.random.default_rng(8)
    trials, hits = 150, 0
    for _ in range(trials):
        others = [_cell(rng, level, 0.05, 2, n=10) for level in rng.uniform(0.01, 1.0, 12)]
        drift = np.exp(rng.normal(0, 0.2, 2))
        a = [g * d for g, d in zip(_cell(rng, 1.0, 0.05, 2, n=20), drift, strict=True)]
        b = [g * d for g, d in zip(_cell(rng, 1.0, 0.05, 2, n=20), drift, strict=True)]
        ratio = ratio_of_rounds(a, b, pooled_process_spread([*others, a, b]))
        hits += ratio.ci_low <= 1.0 <= ratio.ci_high
    assert hits / trials >= 0.9


def _run(rng, rounds):
    """One simulated run: two cells of equal speed, timed in the same rounds, and the run's
    other cells that the pooled spread learns from (every process strays by 5 %)."""
    others = [_cell(rng, level, 0.05, rounds, n=10) for level in rng.uniform(0.01, 1.0, 6)]
    a, b = _cell(rng, 1.0, 0.05, rounds, n=20), _cell(rng, 1.0, 0.05, rounds, n=20)
    return ratio_of_rounds(a, b, pooled_process_spread([*others, a, b]))


def test_a_reruns_estimate_lands_in_the_rerun_interval_as_often_as_it_says():
    """The confidence interval holds the truth ~95 % of the time but a rerun's estimate far
    less often (the rerun has its own error); the rerun interval holds the rerun's estimate.
    Three rounds: with two, the interval's floor (the larger of the rounds' own disagreement and
    the pooled spread) already leans wide."""
    rng = np.random.default_rng(9)
    runs = [_run(rng, rounds=3) for _ in range(400)]
    pairs = list(zip(runs[::2], runs[1::2], strict=True))
    truth = sum(r.ci_low <= 1.0 <= r.ci_high for r in runs) / len(runs)
    rerun_in_ci = sum(a.ci_low <= b.ratio <= a.ci_high for a, b in pairs) / len(pairs)
    widened = [(for_rerun(a), b) for a, b in pairs]
    rerun_in_range = sum(a.ci_low <= b.ratio <= a.ci_high for a, b in widened) / len(pairs)
    assert truth >= 0.92
    assert rerun_in_ci < 0.9
    assert rerun_in_range >= 0.92


def test_the_rerun_interval_is_wider_by_root_two_in_log_scale_on_each_side():
    ratio = Ratio(2.0, 1.6, 2.4)  # lopsided in log scale: each side is widened on its own
    rerun = for_rerun(ratio)
    assert rerun.ratio == 2.0
    assert np.log(2.0 / rerun.ci_low) == pytest.approx(RERUN_WIDENING * np.log(2.0 / 1.6))
    assert np.log(rerun.ci_high / 2.0) == pytest.approx(RERUN_WIDENING * np.log(2.4 / 2.0))
    assert Ratio(1.2, 1.05, 1.4).significant and not for_rerun(Ratio(1.2, 1.05, 1.4)).significant
    assert for_rerun(Ratio(1.0, 1.0, 1.0)) == Ratio(1.0, 1.0, 1.0)  # no error, no widening
