"""Robust summaries of timing samples: medians, IQRs and bootstrap confidence intervals.

A cell measured in several worker processes has samples in groups, one group per process. Its
intervals come from a hierarchical bootstrap — resample the processes, then the samples within
each chosen process — so they cover the variation between processes (thread placement, memory
layout, what else the machine did), which on a shared machine is often the larger part. With one
process the same code reduces to the ordinary bootstrap of the samples, which covers the noise
inside that process only.

Two or three processes are too few for the bootstrap to learn how far a process can stray (two
that happen to agree give a narrow interval), so a ratio's interval can be widened to at least
the t-interval of the run's between-process spread pooled over all its cells
(`pooled_process_spread`). Two cells measured side by side are compared round by round
(`ratio_of_rounds`), so that a drift of the machine between rounds moves no point estimate.

A verdict is a claim about what a rerun will show, so its interval is the range a rerun's own
estimate falls in (`for_rerun`), not the confidence interval of the ratio: a rerun's estimate
carries an error of its own as large as this run's, and a calibrated 95 % confidence interval
holds it only about 83 % of the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

NOISY_IQR_FRACTION = 0.10
Samples = Sequence[float] | npt.NDArray[np.float64]
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Summary:
    """Median, interquartile range and confidence interval of the median of some samples."""

    median: float
    iqr: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def ci_halfwidth_rel(self) -> float:
        """Larger side of the CI around the median, relative to the median."""
        halfwidth = max(self.median - self.ci_low, self.ci_high - self.median)
        if self.median == 0:
            return 0.0 if halfwidth == 0 else float("inf")
        return halfwidth / abs(self.median)

    @property
    def noisy(self) -> bool:
        """True when the IQR exceeds NOISY_IQR_FRACTION of the median."""
        return self.iqr > NOISY_IQR_FRACTION * self.median


@dataclass(frozen=True)
class Ratio:
    """A ratio of medians with its bootstrap confidence interval."""

    ratio: float
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 1 (no difference)."""
        return self.ci_low > 1.0 or self.ci_high < 1.0


def _as_array(samples: Samples, name: str = "samples") -> npt.NDArray[np.float64]:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    return arr


def _percentile_interval(values: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    """The central ``confidence`` range of bootstrap ``values``: the percentile interval."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(samples: Samples, *, confidence: float = 0.95, seed: int = 0) -> Summary:
    """Summarise samples by median, IQR and a percentile-bootstrap CI of the median.

    With fewer than 3 samples the bootstrap is meaningless, so the CI is (min, max).
    Identical samples give a degenerate CI (x, x). Raises ValueError for no samples.
    """
    arr = _as_array(samples)
    q25, median, q75 = np.percentile(arr, [25, 50, 75])
    lo, hi = float(arr.min()), float(arr.max())
    if arr.size >= 3 and lo != hi:
        result = stats.bootstrap(
            (arr,),
            np.median,
            confidence_level=confidence,
            n_resamples=N_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Summary(
        median=float(median), iqr=float(q75 - q25), ci_low=lo, ci_high=hi, n=int(arr.size)
    )


def is_converged(summary: Summary, *, rel_halfwidth: float = 0.02, min_samples: int = 10) -> bool:
    """True when there are enough samples and the median's CI is within ±rel_halfwidth of it."""
    return summary.n >= min_samples and summary.ci_halfwidth_rel <= rel_halfwidth


def ratio_of_medians(
    a: Samples,
    b: Samples,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Ratio:
    """Return median(a) / median(b) with a percentile-bootstrap CI.

    a and b are resampled independently (they are separate measurements, not pairs).
    If either has fewer than 2 samples the CI collapses to the point ratio, so such a
    ratio counts as significant unless it is exactly 1.0.
    """
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    point = float(np.median(xa) / np.median(xb))
    if xa.size < 2 or xb.size < 2:
        return Ratio(point, point, point)
    rng = np.random.default_rng(seed)
    med_a = np.median(xa[rng.integers(0, xa.size, size=(n_resamples, xa.size))], axis=1)
    med_b = np.median(xb[rng.integers(0, xb.size, size=(n_resamples, xb.size))], axis=1)
    return Ratio(point, *_percentile_interval(med_a / med_b, confidence))


def mann_whitney_p(a: Samples, b: Samples) -> float:
    """Two-sided Mann-Whitney U test p-value that a and b come from the same distribution."""
    result = stats.mannwhitneyu(_as_array(a, "a"), _as_array(b, "b"), alternative="two-sided")
    return float(result.pvalue)


Groups = Sequence[Samples]
"""Samples by worker process: ``groups[i]`` are the samples process ``i`` measured."""


def _as_groups(groups: Groups, name: str) -> list[npt.NDArray[np.float64]]:
    arrays = [_as_array(g, f"{name}[{i}]") for i, g in enumerate(groups)]
    if not arrays:
        raise ValueError(f"{name} must hold at least one group of samples")
    return arrays


def _hierarchical_medians(
    groups: list[npt.NDArray[np.float64]], n_resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Bootstrap medians: per resample, draw as many processes as there are (with replacement),
    then from each drawn process as many samples as it has (with replacement); pool; median."""
    sizes = np.array([g.size for g in groups])
    padded = np.full((len(groups), int(sizes.max())), np.nan)
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    chosen = rng.integers(0, len(groups), size=(n_resamples, len(groups)))  # (B, R)
    width = int(sizes.max())
    picks = np.floor(rng.random((n_resamples, len(groups), width)) * sizes[chosen][..., None])
    values = padded[chosen[..., None], picks.astype(np.int64)]  # (B, R, width)
    values[np.arange(width) >= sizes[chosen][..., None]] = np.inf  # beyond a process's count
    pooled = np.sort(values.reshape(n_resamples, -1), axis=1)  # the padding sorts last
    counts = sizes[chosen].sum(axis=1)
    rows = np.arange(n_resamples)
    middle = 0.5 * (pooled[rows, (counts - 1) // 2] + pooled[rows, counts // 2])
    return np.asarray(middle, dtype=np.float64)


def summarize_groups(
    groups: Groups, *, confidence: float = 0.95, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> Summary:
    """`summarize` of all samples pooled, with the CI of the median from the hierarchical
    bootstrap over processes (one group: the ordinary bootstrap, as `summarize`)."""
    arrays = _as_groups(groups, "groups")
    if len(arrays) == 1:
        return summarize(arrays[0], confidence=confidence, seed=seed)
    pooled = np.concatenate(arrays)
    q25, median, q75 = np.percentile(pooled, [25, 50, 75])
    medians = _hierarchical_medians(arrays, n_resamples, np.random.default_rng(seed))
    lo, hi = _percentile_interval(medians, confidence)
    return Summary(float(median), float(q75 - q25), lo, hi, int(pooled.size))


def process_spread(groups: Groups) -> tuple[float, float]:
    """The lowest and highest per-process median: how far the processes disagree."""
    medians = [float(np.median(g)) for g in _as_groups(groups, "groups")]
    return min(medians), max(medians)


@dataclass(frozen=True)
class ProcessSpread:
    """How far one worker process's median strays from its cell's, pooled over many cells.

    ``variance`` is that of the log of a process's median around its cell's mean, with ``df``
    degrees of freedom (the processes beyond the first, summed over cells). Two or three
    processes cannot measure their own cell's spread (two that happen to agree would claim
    certainty); the run's cells, measured on the same machine in the same way, can.
    """

    variance: float
    df: int


def _log_medians(groups: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    return np.log([np.median(g) for g in groups])


def pooled_process_spread(cells: Iterable[Groups]) -> ProcessSpread | None:
    """The between-process variance pooled over ``cells`` (each given as its process groups);
    None when no cell has two processes, or a median is not positive."""
    squares, df = 0.0, 0
    for groups in cells:
        arrays = _as_groups(groups, "groups")
        if len(arrays) < 2 or min(float(np.median(g)) for g in arrays) <= 0:
            continue
        logs = _log_medians(arrays)
        squares += float(np.sum((logs - logs.mean()) ** 2))
        df += len(arrays) - 1
    return ProcessSpread(squares / df, df) if df else None


def ratio_of_rounds(
    a: Groups, b: Groups, spread: ProcessSpread, *, confidence: float = 0.95
) -> Ratio:
    """a / b for two cells measured in the same rounds (process r of each timed side by side in
    round r): the geometric mean of the per-round ratios of process medians, with a t-interval.

    Pooling a cell's processes and taking one median would land anywhere between two rounds'
    medians when the machine drifted between them; round by round the drift cancels. The width
    is each cell's between-process spread (``spread``, `pooled_process_spread`, drift included:
    what a rerun in new processes also meets), or the rounds' own disagreement when larger.
    """
    differences = _round_differences(a, b)
    rounds = len(differences)
    own = float(np.var(differences, ddof=1)) if rounds > 1 else 0.0
    variance = max(own, 2 * spread.variance)  # a difference of two cells' process effects
    half = stats.t.ppf(0.5 + confidence / 2, spread.df) * np.sqrt(variance / rounds)
    centre = float(differences.mean())
    return Ratio(float(np.exp(centre)), float(np.exp(centre - half)), float(np.exp(centre + half)))


def ratio_by_rounds(a: Groups, b: Groups) -> float:
    """a / b as `ratio_of_rounds` estimates it, without the interval: the geometric mean of the
    per-round ratios of process medians — or, when the two were not measured in the same
    number of processes, the ratio of their pooled samples' medians."""
    ga, gb = _as_groups(a, "a"), _as_groups(b, "b")
    if len(ga) != len(gb):
        return float(np.median(np.concatenate(ga)) / np.median(np.concatenate(gb)))
    return float(np.exp(_round_differences(ga, gb).mean()))


def _round_differences(a: Groups, b: Groups) -> npt.NDArray[np.float64]:
    """log(median of a's process r / median of b's process r), for the rounds both have."""
    ga, gb = _as_groups(a, "a"), _as_groups(b, "b")
    rounds = min(len(ga), len(gb))
    return _log_medians(ga[:rounds]) - _log_medians(gb[:rounds])


def _between_process_interval(
    ga: list[npt.NDArray[np.float64]],
    gb: list[npt.NDArray[np.float64]],
    point: float,
    spread: ProcessSpread,
    confidence: float,
) -> tuple[float, float]:
    """A t-interval of the log ratio from each side's between-process variance: its own when
    larger than the pooled one, else the pooled one, over its number of processes."""

    def variance_of_mean(groups: list[npt.NDArray[np.float64]]) -> float:
        own = float(np.var(_log_medians(groups), ddof=1)) if len(groups) > 1 else 0.0
        return max(own, spread.variance) / len(groups)

    half = stats.t.ppf(0.5 + confidence / 2, spread.df) * np.sqrt(
        variance_of_mean(ga) + variance_of_mean(gb)
    )
    return float(point * np.exp(-half)), float(point * np.exp(half))


def ratio_of_medians_grouped(
    a: Groups,
    b: Groups,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    spread: ProcessSpread | None = None,
) -> Ratio:
    """median(a) / median(b), samples pooled, with a hierarchical-bootstrap CI.

    Each side is resampled on its own, processes first and samples within them, so the interval
    widens when a side's processes disagree and shrinks to the within-process noise when they
    do not. Two single-process sides give `ratio_of_medians` exactly.

    With ``spread`` (the run's `pooled_process_spread`) the interval is at least as wide as the
    t-interval that spread implies for each side's number of processes: the bootstrap of two or
    three processes sees too few of them to know how far a process can stray.
    """
    ga, gb = _as_groups(a, "a"), _as_groups(b, "b")
    if len(ga) == 1 and len(gb) == 1:
        ratio = ratio_of_medians(
            ga[0], gb[0], confidence=confidence, n_resamples=n_resamples, seed=seed
        )
    else:
        point = float(np.median(np.concatenate(ga)) / np.median(np.concatenate(gb)))
        rng = np.random.default_rng(seed)
        ratios = _hierarchical_medians(ga, n_resamples, rng) / _hierarchical_medians(
            gb, n_resamples, rng
        )
        ratio = Ratio(point, *_percentile_interval(ratios, confidence))
    if spread is None or ratio.ratio <= 0:
        return ratio
    low, high = _between_process_interval(ga, gb, ratio.ratio, spread, confidence)
    return Ratio(ratio.ratio, min(ratio.ci_low, low), max(ratio.ci_high, high))


RERUN_WIDENING = math.sqrt(2.0)
"""How much wider, in log scale, the interval of a rerun's estimate is than the confidence
interval of this run's: the difference of two independent estimates of equal variance has twice
the variance of one."""


def for_rerun(ratio: Ratio) -> Ratio:
    """The 95 % range a rerun's estimate of ``ratio`` lands in: the interval widened by
    `RERUN_WIDENING` around the point estimate, each side in log scale (the interval may be
    lopsided).

    If the rerun is measured like this run (same processes, samples, machine), a verdict whose
    rerun range excludes 1 has its rerun point the same way 97.5 % of the time, and reruns that
    land outside this run's interval are as rare as the confidence level says.
    """
    if ratio.ratio <= 0 or ratio.ci_low <= 0:
        return ratio
    low = ratio.ratio * (ratio.ci_low / ratio.ratio) ** RERUN_WIDENING
    high = ratio.ratio * (ratio.ci_high / ratio.ratio) ** RERUN_WIDENING
    return Ratio(ratio.ratio, float(low), float(high))
