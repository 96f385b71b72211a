"""The converge suite: time to a quality target on real data, several seeds per mode.

`run_converge` trains each (workload, mode, seed) in a fresh worker process
(``twinbench.converge.worker``, started through `twinbench.harness.process` with the run's
thread budget), seed by seed with the modes interleaved so that a slow spell of the machine
falls on every mode alike. Then, per workload:

1. parity: every mode's first losses at each seed against the reference mode's (the first
   PyTorch mode run) within the float32 curve tolerance of `twinbench.parity`, and the median
   steps to target within `STEPS_MARGIN` or one evaluation interval;
2. per mode, MLPerf's score (`twinbench.converge.scoring`): median time to target over the
   seeds with the fastest and the slowest dropped, its CI, the median steps to target, and
   the time split into start-up (build, init, first step with its compilation), training steps
   and evaluation;
3. a verdict: the mode that reaches the target first among those that passed parity, its
   ratio to the other framework's fastest mode with a CI, and which part of the time makes
   the difference.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twinbench.converge.scoring import Score, ratio, score
from twinbench.converge.settings import CURVE_STEPS, STEPS_MARGIN, ConvergeSettings
from twinbench.harness.process import CellFailed, one_shot
from twinbench.modes import FRAMEWORK_OF, MODES
from twinbench.parity import TOLERANCES, compare_curves
from twinbench.suite import Progress, SuiteInterrupted, WorkerFailures, no_progress

WORKER = "twinbench.converge.worker"
PARTS = ("startup_s", "steps_s", "eval_s")
PART_NAMES = {
    "startup_s": "compile and start-up",
    "steps_s": "per-step speed",
    "eval_s": "evaluation",
}

Run = dict[str, Any]


@dataclass
class ConvergeReport(WorkerFailures):
    """Everything one converge run measured; ``to_dict()`` is what the results store keeps."""

    kind: ClassVar[str] = "converge"

    settings: ConvergeSettings
    runs: list[Run]
    summaries: list[dict[str, Any]]
    parity: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    failures: list[str] = field(default_factory=list)


def run_converge(settings: ConvergeSettings, progress: Progress = no_progress) -> ConvergeReport:
    """Run the converge suite; see the module docstring for what it does, in which order.

    Raises `TwinbenchError` (one line) on a bad setting, a missing dataset package or more
    threads than usable cores — before any worker starts.
    """
    settings.validate()
    settings.check_environment()
    settings = settings.resolved()
    modes = sorted(settings.modes, key=MODES.index)
    runs: list[Run] = []
    try:
        for workload in settings.workloads:
            for seed in settings.seed_list:
                for mode in modes:
                    progress(f"{workload}: {mode}, seed {seed}")
                    runs.append(_train(settings, workload, mode, seed))
    except KeyboardInterrupt:  # the seed being trained is lost; every finished one is kept
        raise SuiteInterrupted(_report(settings, modes, runs, interrupted=True)) from None
    return _report(settings, modes, runs)


def _report(
    settings: ConvergeSettings, modes: list[str], runs: list[Run], *, interrupted: bool = False
) -> ConvergeReport:
    """Scores, parity and verdicts of the seeds in ``runs`` (all of them, or those that finished
    before an interruption)."""
    summaries = [summarise(w, m, _of(runs, w, m)) for w in settings.workloads for m in modes]
    parity = [
        row
        for w in settings.workloads
        for row in check_parity(w, modes, runs, settings.eval_every_for(w))
    ]
    verdicts = [
        verdict(w, [s for s in summaries if s["workload"] == w], parity) for w in settings.workloads
    ]
    failures = [
        f"{r['workload']} {r['mode']} seed {r['seed']}: {r['status']}: {r['error']}"
        for r in runs
        if r["status"] not in ("converged", "not converged")
    ]
    report = ConvergeReport(settings, runs, summaries, parity, verdicts, failures)
    report.interrupted = interrupted
    return report


def _train(settings: ConvergeSettings, workload: str, mode: str, seed: int) -> Run:
    request = {
        "kind": "train",
        "task": workload,
        "framework": FRAMEWORK_OF[mode],
        "mode": mode,
        "seed": seed,
        "target": settings.target_for(workload),
        "max_steps": settings.max_steps_for(workload),
        "eval_every": settings.eval_every_for(workload),
    }
    run: Run = {"workload": workload, "mode": mode, "seed": seed}
    try:
        answer = one_shot(
            request, threads=settings.threads or 1, timeout=settings.timeout_s, module=WORKER
        )
    except CellFailed as exc:  # recorded with its message; the suite goes on
        return {**run, "status": exc.status, "error": exc.error}
    parts = {"startup_s": answer["setup_s"] + answer["first_step_s"], "eval_s": answer["eval_s"]}
    parts["steps_s"] = answer["time_s"] - parts["startup_s"] - parts["eval_s"]
    return {**run, **answer, **parts, "error": None}


def _of(runs: Sequence[Run], workload: str, mode: str) -> list[Run]:
    return [r for r in runs if r["workload"] == workload and r["mode"] == mode]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(workload: str, mode: str, runs: Sequence[Run]) -> dict[str, Any]:
    """MLPerf's score of one (workload, mode) over its seeds, with steps and the time's parts.

    A seed whose worker failed has no time and is left out of the score (the failure is
    listed); a seed that did not converge counts as infinitely slow.
    """
    trained = [r for r in runs if r["status"] in ("converged", "not converged")]
    converged = [r for r in trained if r["status"] == "converged"]
    row: dict[str, Any] = {
        "workload": workload,
        "mode": mode,
        "seeds": len(runs),
        "trained": len(trained),
        "converged": len(converged),
        "steps_to_target": _median([r["steps_to_target"] for r in converged]),
        **{part: _median([r[part] for r in converged]) for part in PARTS},
        "step_s": _median([r["steps_s"] / max(r["steps"] - 1, 1) for r in converged]),
    }
    if not trained:
        return {**row, "median_s": None, "ci_low_s": None, "ci_high_s": None, "kept_s": []}
    scored: Score = score([r["time_to_target_s"] for r in trained])
    return {
        **row,
        "median_s": scored.median,
        "ci_low_s": scored.ci_low,
        "ci_high_s": scored.ci_high,
        "kept_s": list(scored.kept),
        "finite": scored.finite,
    }


def check_parity(
    workload: str, modes: Sequence[str], runs: Sequence[Run], eval_every: int
) -> list[dict[str, Any]]:
    """Each mode against the reference mode (the first PyTorch one, else the first): the first
    `CURVE_STEPS` losses at every seed, and the median steps to target."""
    torch_modes = [m for m in modes if FRAMEWORK_OF[m] == "torch"]
    reference = (torch_modes or list(modes))[0]
    reference_runs = {r["seed"]: r for r in _of(runs, workload, reference) if "curve" in r}
    tolerance = TOLERANCES["float32"].curve
    rows = []
    for mode in modes:
        if mode == reference:
            continue
        mine = {r["seed"]: r for r in _of(runs, workload, mode) if "curve" in r}
        seeds = sorted(set(mine) & set(reference_runs))
        curves = []
        for s in seeds:
            ref, other = reference_runs[s]["curve"], mine[s]["curve"]
            n = min(len(ref), len(other), CURVE_STEPS)
            check = compare_curves(
                f"seed {s}", ref[:n], other[:n], tolerance, labels=(reference, mode)
            )
            curves.append({"seed": s, "passed": check.passed, "detail": check.detail})
        ref_steps = _median([t for s in seeds if (t := reference_runs[s]["steps_to_target"])])
        my_steps = _median([t for s in seeds if (t := mine[s]["steps_to_target"])])
        margin = max(float(eval_every), STEPS_MARGIN * (ref_steps or 0.0))
        steps_ok = (ref_steps is None and my_steps is None) or (
            ref_steps is not None and my_steps is not None and abs(ref_steps - my_steps) <= margin
        )
        curves_ok = bool(curves) and all(c["passed"] for c in curves)
        rows.append(
            {
                "workload": workload,
                "mode": mode,
                "reference": reference,
                "curves": curves,
                "curves_passed": curves_ok,
                "reference_steps": ref_steps,
                "steps": my_steps,
                "steps_margin": margin,
                "steps_passed": steps_ok,
                "passed": curves_ok and steps_ok,
            }
        )
    return rows


def verdict(
    workload: str, summaries: Sequence[dict[str, Any]], parity: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Which mode reaches the target first, by how much against the other framework's best,
    and from which part of the time — among the modes that passed parity only."""
    checks = {p["mode"]: p for p in parity if p["workload"] == workload}
    references = {p["reference"] for p in checks.values()}
    agreed = [
        s
        for s in summaries
        if (checks[s["mode"]]["passed"] if s["mode"] in checks else s["mode"] in references)
    ]
    scored = [s for s in agreed if s.get("finite") and s["median_s"] is not None]
    base: dict[str, Any] = {"workload": workload, "ratio": None, "ci_low": None, "ci_high": None}
    if len(summaries) < 2:  # nothing to compare, and no parity check was run against it
        modes = ", ".join(s["mode"] for s in summaries) or "none"
        return {**base, "winner": None, "text": f"no verdict: one mode was run ({modes})"}
    if len(scored) < 2:
        failed = [s["mode"] for s in summaries if s not in agreed]
        why = (
            f"the twins disagree (parity failed for {', '.join(failed)})"
            if failed
            else "fewer than two modes reached the target in enough seeds to be scored"
        )
        return {**base, "winner": None, "text": f"no verdict: {why}"}
    scored.sort(key=lambda s: s["median_s"])
    winner = scored[0]
    others = [s for s in scored[1:] if FRAMEWORK_OF[s["mode"]] != FRAMEWORK_OF[winner["mode"]]]
    rival = (others or scored[1:])[0]
    r = ratio(_as_score(rival), _as_score(winner))
    assert r is not None  # both finite
    cause = max(PARTS, key=lambda p: (rival[p] or 0.0) - (winner[p] or 0.0))
    if r.significant:
        text = (
            f"{winner['mode']} reaches the target first: {rival['mode']} takes "
            f"{r.ratio:.2f}× as long [{r.ci_low:.2f}, {r.ci_high:.2f}], mostly from "
            f"{PART_NAMES[cause]}"
        )
    else:
        text = (
            f"no significant difference between {winner['mode']} and {rival['mode']} "
            f"({r.ratio:.2f}× [{r.ci_low:.2f}, {r.ci_high:.2f}])"
        )
    return {
        **base,
        "winner": winner["mode"],
        "rival": rival["mode"],
        "ratio": r.ratio,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "significant": r.significant,
        "cause": cause if r.significant else None,
        "differences": {p: (rival[p] or 0.0) - (winner[p] or 0.0) for p in PARTS},
        "text": text,
    }


def _as_score(summary: dict[str, Any]) -> Score:
    kept = tuple(summary["kept_s"])
    return Score(
        summary["median_s"],
        summary["ci_low_s"],
        summary["ci_high_s"],
        kept,
        summary["converged"],
        summary["trained"],
    )
