"""Advice derived from one run's measurements — never written in advance.

``recommend(summary)`` is a pure function of the RunSummary: every sentence it returns quotes the
numbers it follows from, so a reader can check it, and different numbers give different advice.
A suite run's advice comes from its report view (`twinbench.suite.SuiteView.recommendations`,
looked up by kind, so this module imports no suite); `Recommendation` and `KINDS` are the
vocabulary both share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from twinbench.modes import COMPILED_MODES
from twinbench.report.memory import PREFIX as MEMORY_PREFIX
from twinbench.report.memory import sequence_budget_findings
from twinbench.report.summary import (
    RunSummary,
    SweepSeries,
    base_size,
    groups,
    ok_cells,
    parity_record,
    sweep_batch_size,
    sweep_series,
)
from twinbench.report.text import fmt_seconds, fmt_steps
from twinbench.report.verdict import Verdict
from twinbench.store import CellRecord, RunRecord
from twinbench.suite import view_for

# Kinds, in the order a reader should see them.
KINDS = (
    "parity",  # the twins disagree: fix before reading any speed number
    "failed",  # a cell errored, crashed or timed out
    "not-converged",  # converge: a mode missed the quality target at some starts
    "time-to-target",  # converge: the mode that reaches the target first, and why
    "fastest",  # dynamic: the strategy that finishes a schedule of changing shapes first
    "long-training",  # the fastest steady-state mode, when the difference is significant
    "short-runs",  # a mode that starts sooner wins runs shorter than the break-even
    "bucketing",  # dynamic: how many distinct shapes make padding to buckets pay
    "indistinguishable",  # the frameworks' best modes are within noise of each other
    "noisy",  # cells too noisy to judge
    "memory",  # which framework's model needs less memory, when the difference is significant
    "sweep",  # batch-size sweeps: where throughput peaks, how step time grows
    "features",  # dynamic control flow: what works in one framework and fails in the other
    "run",  # about the run as a whole (interrupted, nothing measured)
)
# A memory-budget prediction this many times past the largest batch swept gets a caution: the
# line fitted over the sweep misses memory that grows faster than it at large batches.
FAR_EXTRAPOLATION = 4


@dataclass(frozen=True)
class Recommendation:
    """One piece of advice: its kind (one of `KINDS`), what it is about, and the sentence, which
    quotes the numbers it follows from."""

    kind: str
    subject: str  # "mlp/small train", "digits", or "run" for run-wide advice
    text: str


def _one_time_cost(cell: CellRecord) -> float:
    """What a mode pays once before its steady state: compile time (0 for eager modes)."""
    compile_s = cell.metrics.get("compile_s")
    return float(compile_s) if compile_s is not None and cell.mode in COMPILED_MODES else 0.0


def _median(cell: CellRecord) -> float:
    return float(cell.metrics["median_s"])


def _best_verdict(verdicts: list[Verdict], key: tuple[str, str, str]) -> Verdict | None:
    for v in verdicts:
        if (v.workload, v.size, v.phase) == key and v.comparison == "best vs best":
            return v
    return None


def _group_advice(
    summary: RunSummary, key: tuple[str, str, str], cells: list[CellRecord]
) -> list[Recommendation]:
    workload, size, phase = key
    subject = f"{workload}/{size} {phase}"
    out: list[Recommendation] = []
    for cell in cells:
        if cell.status != "ok":
            first = (cell.error or "no error text").strip().splitlines()
            out.append(
                Recommendation(
                    "failed",
                    subject,
                    f"{cell.mode} {cell.status}: {first[0][:200] if first else ''} — "
                    "no timing for this mode; fix or exclude it before comparing.",
                )
            )
    record = parity_record(summary, workload, size)
    if record is not None and not record["passed"]:
        out.append(
            Recommendation(
                "parity",
                subject,
                "the twins do not compute the same thing, so their speeds are not comparable: "
                "fix the twin named in the parity section, then measure again.",
            )
        )
        return out
    ok = ok_cells(cells)
    if not ok:
        return out
    verdict = _best_verdict(summary.verdicts, key)
    fastest = min(ok.values(), key=_median)
    significant = verdict is not None and verdict.ratio is not None and verdict.ratio.significant
    noisy = [c for c in ok.values() if c.metrics.get("noisy") or not c.metrics.get("converged")]
    if verdict is not None and verdict.ratio is not None and not significant:
        r = verdict.ratio
        out.append(
            Recommendation(
                "indistinguishable",
                subject,
                f"{verdict.torch_mode} and {verdict.jax_mode} are indistinguishable in steady "
                f"state (time ratio {r.ratio:.2f}, 95% rerun interval "
                f"{r.ci_low:.2f}–{r.ci_high:.2f} holds 1): choose the framework on other grounds.",
            )
        )
    elif len(ok) > 1:
        others = sorted((c for c in ok.values() if c is not fastest), key=_median)
        runner_up = others[0]
        lead = _median(runner_up) / _median(fastest)
        claim = ""
        if significant and verdict is not None and verdict.ratio is not None:
            r = verdict.ratio
            low, high = (r.ci_low, r.ci_high) if r.ratio > 1 else (1 / r.ci_high, 1 / r.ci_low)
            pair = {verdict.torch_mode, verdict.jax_mode}
            if pair == {fastest.mode, runner_up.mode}:
                claim = f" (95% rerun interval {low:.2f}–{high:.2f}×)"
            else:
                claim = f"; across frameworks: {verdict.text}"
        out.append(
            Recommendation(
                "long-training",
                subject,
                f"for long training use {fastest.mode}: {fmt_seconds(_median(fastest))} per step, "
                f"{lead:.2f}× faster than the next mode, {runner_up.mode}{claim}.",
            )
        )
    # Short runs: a mode with a smaller one-time cost finishes n steps sooner for small n.
    for cell in sorted(ok.values(), key=_one_time_cost):
        extra = _one_time_cost(fastest) - _one_time_cost(cell)
        slower = _median(cell) - _median(fastest)
        if cell is fastest or extra <= 0 or slower <= 0:
            continue
        steps = extra / slower
        out.append(
            Recommendation(
                "short-runs",
                subject,
                f"for runs shorter than about {fmt_steps(steps)} steps use {cell.mode}: "
                f"{fastest.mode} spends {fmt_seconds(_one_time_cost(fastest))} compiling and saves "
                f"{fmt_seconds(slower)} per step, which pays off only after {fmt_steps(steps)} "
                "steps.",
            )
        )
        break
    else:
        if fastest.mode in COMPILED_MODES and len(ok) > 1:
            out.append(
                Recommendation(
                    "short-runs",
                    subject,
                    f"{fastest.mode} wins short runs too: no other mode measured here starts "
                    "cheaper and is fast enough to finish first.",
                )
            )
    if noisy and not significant:
        names = ", ".join(
            f"{c.mode} (IQR {100 * c.metrics.get('iqr_s', 0) / _median(c):.0f}% of median)"
            for c in noisy
        )
        out.append(
            Recommendation(
                "noisy",
                subject,
                f"too noisy to judge: {names}; measure again with a longer --budget on a "
                "quieter machine before drawing a conclusion.",
            )
        )
    return out


def _memory_advice(summary: RunSummary) -> list[Recommendation]:
    """From each group's best-vs-best memory verdict: the leaner framework when it is
    significantly leaner, or that memory should not decide when it is not."""
    out = []
    for v in summary.verdicts:
        if v.comparison != MEMORY_PREFIX + "best vs best" or v.ratio is None or "bs=" in v.size:
            continue  # a sweep point's memory is read off the sweep's fit
        subject = f"{v.workload}/{v.size} {v.phase}"
        if v.ratio.significant:
            text = f"when memory is what limits the batch or the model: {v.text}."
        else:
            text = f"memory does not separate the frameworks here: {v.text}."
        out.append(Recommendation("memory", subject, text))
    return out


def _checkpointing_advice(summary: RunSummary) -> list[Recommendation]:
    """Memory saved against step time paid by gradient checkpointing, per mode, where a run
    measured a size both ways (``small`` and ``small ckpt``)."""
    out = []
    by_key = groups(summary)
    for (workload, size, phase), cells in by_key.items():
        with_it = by_key.get((workload, f"{size} ckpt", phase))
        if size.endswith(" ckpt") or not with_it:
            continue
        plain, remat = ok_cells(cells), ok_cells(with_it)
        trades = []
        for mode in (m for m in plain if m in remat):
            before, after = plain[mode].metrics, remat[mode].metrics
            if not before.get("attributable_peak_bytes"):
                continue
            saved = before["attributable_peak_bytes"] - after["attributable_peak_bytes"]
            slower = after["median_s"] / before["median_s"] - 1
            trades.append(
                f"{mode} {saved / 2**20:+.3g} MiB saved "
                f"({saved / before['attributable_peak_bytes']:.0%}) for {slower:+.0%} step time"
            )
        if trades:
            out.append(
                Recommendation(
                    "memory",
                    f"{workload}/{size} {phase}",
                    "gradient checkpointing: " + "; ".join(trades) + ".",
                )
            )
    return out


def _sweep_advice(summary: RunSummary) -> list[Recommendation]:
    out = []
    series = sweep_series(summary.cells)
    by_group: dict[tuple[str, str, str], list[SweepSeries]] = {}
    for s in series:
        by_group.setdefault((s.workload, s.base, s.phase), []).append(s)
    for (workload, base, phase), members in by_group.items():
        best_tp, best_bs, best_mode = max(
            (tp, bs, s.mode)
            for s in members
            for tp, bs in zip(s.samples_per_s, s.batch_sizes, strict=True)
        )
        growth = "; ".join(
            f"{s.mode} step time ∝ batch^{s.exponent:.2f}"
            for s in members
            if s.exponent is not None
        )
        top = max(max(s.batch_sizes) for s in members)
        where = "the largest batch measured" if best_bs == top else f"batch {best_bs}"
        hint = (
            " — throughput may still grow beyond it"
            if best_bs == top
            else " — larger batches lost throughput"
        )
        fits = "; ".join(
            f"{s.mode} {_bytes(fit.bytes_per_sample)} per sample + "
            f"{_bytes(fit.intercept_bytes)} fixed"
            for s in members
            if (fit := s.memory_fit) is not None
        )
        memory = f" Memory of one step: {fits}." if fits else ""
        out.append(
            Recommendation(
                "sweep",
                f"{workload}/{base} {phase}",
                f"best throughput: {best_mode} at {where} ({best_tp:,.0f} samples/s){hint}. "
                f"{growth} (1 = linear; below 1, bigger batches are cheaper per sample).{memory}",
            )
        )
    sequence_budget = [
        Recommendation("memory", subject, f"{text}.")
        for subject, text in sequence_budget_findings(summary.run.info)
    ]
    return out + _budget_advice(summary) + sequence_budget + _sequence_advice(summary)


def _bytes(value: float) -> str:
    """``14.0 MiB``, ``512 KiB``, ``96 B``: three significant digits in the largest unit."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} B"


def _budget_advice(summary: RunSummary) -> list[Recommendation]:
    """The largest batch each swept mode was predicted to fit, and what measuring it showed."""
    record = summary.run.info.get("memory_budget")
    if not record:
        return []
    budget = f"{record['budget_bytes'] / 2**20:,.0f} MiB"
    out = []
    for fit in record["fits"]:
        subject = f"{fit['workload']}/{fit['size']} {fit['phase']}"
        predicted = fit.get("predicted_batch")
        if predicted is None:
            text = f"{fit['mode']} within {budget}: {fit['outcome']}."
        else:
            measured = fit.get("measured_bytes")
            at = f", measured {measured / 2**20:,.3g} MiB there" if measured is not None else ""
            text = (
                f"{fit['mode']} within {budget}: largest batch predicted {predicted:,}{at} — "
                f"{fit['outcome']}."
            ) + _extrapolation_caution(predicted, fit.get("batch_sizes") or ())
        out.append(Recommendation("memory", subject, text))
    return out


def _extrapolation_caution(predicted: int, swept: Sequence[int]) -> str:
    """A sentence when ``predicted`` lies far past the batches the line was fitted over."""
    largest = max(swept, default=0)
    if not largest or predicted <= FAR_EXTRAPOLATION * largest:
        return ""
    return (
        f" The prediction lies {predicted / largest:.0f}× past the largest batch swept "
        f"({largest:,}), where a line fitted over the sweep misses memory that grows faster at "
        "large batches: sweep closer to the budget to trust it."
    )


def _sequence_advice(summary: RunSummary) -> list[Recommendation]:
    """How each mode's memory of one step grows with the sequence length, where a run swept it."""
    by_subject: dict[str, list[str]] = {}
    for fit in summary.run.info.get("memory_sequence_fits") or []:
        ckpt = " ckpt" if fit["checkpointing"] else ""
        subject = f"{fit['workload']}/{fit['size']} bs={fit['batch_size']}{ckpt} {fit['phase']}"
        by_subject.setdefault(subject, []).append(
            f"{fit['mode']} {_bytes(fit['bytes_per_token'])} per token + "
            f"{_bytes(fit['intercept_bytes'])} fixed"
        )
    return [
        Recommendation(
            "sweep", subject, f"memory of one step against sequence length: {'; '.join(fits)}."
        )
        for subject, fits in by_subject.items()
    ]


def ordered(recommendations: Sequence[Recommendation]) -> list[Recommendation]:
    """``recommendations`` in the order of `KINDS` (stable: same kinds keep their order); a kind
    of its own (a user's suite) comes last."""
    rank = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(recommendations, key=lambda r: rank.get(r.kind, len(KINDS)))


def _suite_advice(run: RunRecord, kind: str) -> list[Recommendation]:
    """What the suite's view derives from the stored result, and a word on an unfinished run."""
    view, data = view_for(kind), run.info.get(kind)
    out = []
    if view is not None and view.recommendations is not None and isinstance(data, dict):
        out = list(view.recommendations(data))
    if run.status != "finished":
        out.append(
            Recommendation(
                "run",
                "run",
                f"the run is {run.status}: the advice covers only what it measured; see the "
                "failures above, and run it again to complete the picture.",
            )
        )
    return ordered(out)


def recommend(summary: RunSummary) -> list[Recommendation]:
    """Every recommendation the run's numbers support, ordered by KINDS; for a suite run, its
    view's (none when the view gives none)."""
    if kind := summary.run.settings.get("kind"):
        return _suite_advice(summary.run, str(kind))
    out: list[Recommendation] = []
    sweep_parity: set[tuple[str, str]] = set()
    for key, cells in groups(summary).items():
        advice = _group_advice(summary, key, cells)
        if any(sweep_batch_size(c) is not None for c in cells):
            # a sweep point: its speed advice is given per sweep, its parity once per sweep
            for r in advice:
                if r.kind == "parity" and (key[0], base_size(key[1])) not in sweep_parity:
                    sweep_parity.add((key[0], base_size(key[1])))
                    out.append(replace(r, subject=f"{key[0]}/{base_size(key[1])} sweep"))
            advice = [r for r in advice if r.kind == "failed"]
        out += advice
    out += _memory_advice(summary)
    out += _checkpointing_advice(summary)
    out += _sweep_advice(summary)
    run = summary.run
    if run.status != "finished":
        measured = sum(1 for c in summary.cells if c.status == "ok")
        out.append(
            Recommendation(
                "run",
                "run",
                f"the run is {run.status}: advice covers only the {measured} cells it measured; "
                "run it again to complete the picture.",
            )
        )
    if not any(c.status == "ok" for c in summary.cells):
        out.append(
            Recommendation(
                "run",
                "run",
                "no cell was measured successfully, so there is nothing to recommend on speed; "
                "see the failures above.",
            )
        )
    return ordered(out)
