"""Verdicts: which framework is faster for a workload, by what ratio, and how sure we are.

Computed from stored cells only (raw samples included), so any run can be judged again later.
A ratio is PyTorch time / JAX time: above 1 JAX is faster. Cells measured in several worker
processes were timed round by round (process r of every cell of a group in round r), so their
ratio is the geometric mean of the per-round ratios (a drift of the machine between rounds moves
both cells alike and cancels), with a t-interval from the between-process spread pooled over the
run's cells. Cells of one process each get the bootstrap CI of their raw samples.

The interval a verdict states is the range a rerun's ratio falls in 95 % of the time
(`twinbench.harness.stats.for_rerun`: the confidence interval widened by √2 in log scale, since
a rerun carries its own error), so a verdict says what a rerun on this machine will show. When
that range contains 1 the verdict is "no significant difference".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinbench.harness.stats import (
    ProcessSpread,
    Ratio,
    for_rerun,
    pooled_process_spread,
    ratio_of_medians,
    ratio_of_medians_grouped,
    ratio_of_rounds,
)
from twinbench.modes import FRAMEWORK_OF, MODES, mode_of
from twinbench.store import CellRecord

# (label, torch modes considered, JAX modes considered)
COMPARISONS = (
    ("best vs best", tuple(m for m in MODES if FRAMEWORK_OF[m] == "torch"),
     tuple(m for m in MODES if FRAMEWORK_OF[m] == "jax")),
    ("eager vs eager", (mode_of("torch", compiled=False),), (mode_of("jax", compiled=False),)),
    ("compiled vs compiled", (mode_of("torch", compiled=True),), (mode_of("jax", compiled=True),)),
)  # fmt: skip
FLOPS_DISAGREEMENT = 0.10


@dataclass(frozen=True)
class Verdict:
    workload: str
    size: str
    phase: str
    comparison: str
    torch_mode: str | None
    jax_mode: str | None
    ratio: Ratio | None  # torch / jax
    text: str


def _ok(cells: list[CellRecord]) -> dict[str, CellRecord]:
    return {c.mode: c for c in cells if c.status == "ok" and c.samples}


def best_pairs(
    by_mode: dict[str, CellRecord], figure: Callable[[CellRecord], float]
) -> Iterator[tuple[str, CellRecord, CellRecord]]:
    """(comparison, torch cell, jax cell) for each comparison both sides have a cell for: on
    each side the cell with the lowest ``figure`` (step time, memory) among the compared modes."""
    for label, torch_modes, jax_modes in COMPARISONS:
        torch_cells = [by_mode[m] for m in torch_modes if m in by_mode]
        jax_cells = [by_mode[m] for m in jax_modes if m in by_mode]
        if torch_cells and jax_cells:
            yield label, min(torch_cells, key=figure), min(jax_cells, key=figure)


def _describe(torch_mode: str, jax_mode: str, ratio: Ratio) -> str:
    if not ratio.significant:
        return (
            f"no significant difference (time {torch_mode} / {jax_mode} = {ratio.ratio:.2f}, "
            f"95% rerun interval {ratio.ci_low:.2f}–{ratio.ci_high:.2f})"
        )
    if ratio.ratio > 1:  # the CI is stated for the claim's own factor
        return (
            f"{jax_mode} {ratio.ratio:.2f}× faster than {torch_mode} "
            f"(95% rerun interval {ratio.ci_low:.2f}–{ratio.ci_high:.2f}×)"
        )
    return (
        f"{torch_mode} {1 / ratio.ratio:.2f}× faster than {jax_mode} "
        f"(95% rerun interval {1 / ratio.ci_high:.2f}–{1 / ratio.ci_low:.2f}×)"
    )


def group_verdicts(
    cells: list[CellRecord],
    *,
    parity_passed: bool | None,
    parity_reason: str = "",
    spread: ProcessSpread | None = None,
) -> list[Verdict]:
    """Step-time and time-to-first-step verdicts for the cells of one (workload, size, phase).

    ``spread`` is the run's between-process spread (`run_spread`): with it, two cells are
    compared round by round (process r of each was timed in round r, side by side), so a drift
    of the machine between rounds moves no ratio, with a t-interval no narrower than that spread
    implies. Without it (one process per cell), the bootstrap of the samples.
    """
    first = cells[0]
    key = (first.workload, first.size, first.phase)
    if parity_passed is False:
        reason = (
            f"no verdict: the twins failed parity ({parity_reason})"
            if parity_reason
            else ("no verdict: the twins failed parity")
        )
        return [Verdict(*key, "best vs best", None, None, None, reason)]
    ok = _ok(cells)
    verdicts = []
    for label, best_torch, best_jax in best_pairs(ok, lambda c: c.metrics["median_s"]):
        torch_groups, jax_groups = best_torch.sample_groups(), best_jax.sample_groups()
        ratio = for_rerun(
            ratio_of_rounds(torch_groups, jax_groups, spread)
            if spread is not None
            else ratio_of_medians_grouped(torch_groups, jax_groups)
        )
        verdicts.append(
            Verdict(
                *key,
                label,
                best_torch.mode,
                best_jax.mode,
                ratio,
                _describe(best_torch.mode, best_jax.mode, ratio),
            )
        )
    first_step = _first_step_verdict(key, ok)
    if first_step is not None:
        verdicts.append(first_step)
    return verdicts


def first_step_times(cell: CellRecord) -> list[float]:
    """Time to first step of each of the cell's processes (one value for older runs)."""
    values = cell.metrics.get("time_to_first_step_s_by_process")
    return list(values) if values else [cell.metrics["time_to_first_step_s"]]


def _first_step_verdict(key: tuple[str, str, str], ok: dict[str, CellRecord]) -> Verdict | None:
    """Which framework's fastest-starting mode takes its first step sooner, compile included.

    The first process of each cell starts with empty compile caches, later ones with warm ones:
    the ratio's interval over processes covers both, and the text names the cold figures.
    """
    medians = {m: float(np.median(first_step_times(c))) for m, c in ok.items()}
    torch_first = [m for m in ok if FRAMEWORK_OF[m] == "torch"]
    jax_first = [m for m in ok if FRAMEWORK_OF[m] == "jax"]
    if not torch_first or not jax_first:
        return None
    t = min(torch_first, key=medians.__getitem__)
    j = min(jax_first, key=medians.__getitem__)
    t_times, j_times = first_step_times(ok[t]), first_step_times(ok[j])
    ratio = for_rerun(ratio_of_medians(t_times, j_times))
    n = min(len(t_times), len(j_times))
    if n < 2:
        detail = "one measurement each, compile included"
    else:
        detail = (
            f"median of {n} processes, compile included, 95% rerun interval of the ratio "
            f"{ratio.ci_low:.2f}–{ratio.ci_high:.2f}"
        )
    if n >= 2 and not ratio.significant:
        text = (
            f"no significant difference: {t} {medians[t]:.3g} s vs {j} {medians[j]:.3g} s "
            f"({detail})"
        )
    else:
        faster, slower = (t, j) if medians[t] < medians[j] else (j, t)
        text = (
            f"{faster} starts first: {medians[faster]:.3g} s vs {medians[slower]:.3g} s for "
            f"{slower} ({detail})"
        )
    return Verdict(*key, "time to first step", t, j, ratio if n >= 2 else None, text)


def flops_disagreement(cells: list[CellRecord]) -> float | None:
    """Relative gap between the two frameworks' FLOP counters for one group, if both counted."""
    counts: dict[str, float] = {}
    for cell in cells:
        flops = cell.metrics.get("flops_per_step")
        if cell.status == "ok" and flops:
            counts.setdefault(cell.framework, flops)
    if len(counts) < 2:
        return None
    low, high = sorted(counts.values())
    return (high - low) / high


def verdicts_for_run(cells: list[CellRecord], parity: list[dict[str, Any]]) -> list[Verdict]:
    """Every verdict of a run, grouped by workload, size and phase in the order measured."""
    verdicts = []
    spread = run_spread(cells)
    for (workload, size, _phase, _dtype), group in cell_groups(cells).items():
        record = parity_of(parity, workload, size)
        passed = None if record is None else bool(record["passed"])
        reason = _parity_reason(record["summary"]) if record and not passed else ""
        verdicts += group_verdicts(group, parity_passed=passed, parity_reason=reason, spread=spread)
    return verdicts


def run_spread(cells: list[CellRecord]) -> ProcessSpread | None:
    """How far a process's median strays from its cell's, pooled over the measured cells."""
    return pooled_process_spread(c.sample_groups() for c in cells if c.status == "ok" and c.samples)


def cell_groups(cells: list[CellRecord]) -> dict[tuple[str, str, str, str], list[CellRecord]]:
    """Cells by (workload, size, phase, dtype), in the order measured."""
    groups: dict[tuple[str, str, str, str], list[CellRecord]] = {}
    for cell in cells:
        groups.setdefault((cell.workload, cell.size, cell.phase, cell.dtype), []).append(cell)
    return groups


def parity_of(parity: list[dict[str, Any]], workload: str, size: str) -> dict[str, Any] | None:
    """The parity record of a workload at a size; a sweep point ("small bs=64") was checked at
    its base size ("small")."""
    by_key = {(p["workload"], p["size"]): p for p in parity}
    return by_key.get((workload, size)) or by_key.get((workload, size.split(" ")[0]))


def _parity_reason(summary: dict[str, Any]) -> str:
    if summary.get("error"):
        return str(summary["error"])
    failed = [c["name"] for c in summary.get("checks", []) if not c.get("passed")]
    return "failed: " + ", ".join(failed) if failed else ""
