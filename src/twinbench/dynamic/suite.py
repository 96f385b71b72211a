"""The dynamic suite: what changing shapes and data-dependent control flow cost each framework.

``seq-len``: one seeded schedule of sequence lengths, the same for every strategy; each strategy
runs the whole schedule in ``repeats`` fresh worker processes (``twinbench.dynamic.worker``,
started through `twinbench.harness.process`, each with an empty torch.compile cache), timing
every step and counting the compilations each step caused. Correctness before speed: each
strategy's loss sequence is compared with ``torch-eager``'s on the unpadded batches, within the
parity tolerances; a strategy that fails gets no verdict. Then the verdicts: the fastest strategy
per framework and overall, the ratio with its CI over the processes, and the break-even points.

``batch`` does the same with the batch size (rows padded, a per-row mask): the mlp trains on
it, gpt serves it (forward passes only; each step's loss over the real rows summarises its
logits and is what is compared with torch-eager's). ``generate`` decodes
seeded prompts greedily with each generation strategy; its tokens must equal torch-eager's.
``control-flow``: the feature table of `twinbench.dynamic.features`, one worker per framework.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from twinbench.dynamic.schedule import draw_lengths, padded_lengths, padding_share
from twinbench.dynamic.settings import AXIS, BY_NAME, END_TOKEN, REFERENCE, DynamicSettings
from twinbench.harness.process import CellFailed, WorkerProcess
from twinbench.harness.stats import Ratio, ratio_of_medians, summarize
from twinbench.modes import FRAMEWORKS
from twinbench.parity import TOLERANCES, compare, compare_curves
from twinbench.suite import Progress, SuiteInterrupted, WorkerFailures, no_progress

WORKER = "twinbench.dynamic.worker"
WORKER_TIMEOUT_S = 1800  # a whole schedule, every compile included
# Correctness: the first CURVE_STEPS losses within CURVE_TOLERANCE, which grows with the step as
# parity's loss curve does (a mask bug shows at the first padded step); every later one within
# DRIFT_RTOL of torch-eager's, give or take that tolerance's atol: rounding drifts a long
# schedule apart even when every step is right (gpt small, 100 Adam steps: compiled torch within
# 7.7e-6 of eager over the first 20 steps, 4.0e-3 apart by step 100), and a relative bound
# says nothing of a loss near zero (the regression mlp's 3.40e-6 and 3.35e-6: 1.7 %, 6e-8 apart).
# CURVE_TOLERANCE is parity's per-step gradient tolerance, not its fixed-shape curve's ten times
# tighter one: changing lengths move a step's loss further by rounding alone. On gpt small's
# schedule two exact JAX computations (per shape and bucketed) reached 0.25x the curve tolerance
# at step 8, JAX vs torch 1.3x, while padding leaked into the loss moved it 350-8,000x (1,800x
# at step 0).
CURVE_STEPS = 20
CURVE_TOLERANCE = TOLERANCES["float32"].gradients
DRIFT_RTOL = 0.01
BUCKETING_PAIRS = (("jax-jit", "jax-jit-bucketed"), ("torch-compile", "torch-compile-bucketed"))
PAYBACK_PAIRS = (  # a compiled strategy and the eager one it must pay its compiles back against
    ("torch-compile-dynamic", "torch-eager"),
    ("torch-compile", "torch-eager"),
    ("jax-jit-pad-max", "jax-eager"),
    ("jax-jit", "jax-eager"),
)


@dataclass
class DynamicReport(WorkerFailures):
    """Everything one run measured; ``to_dict()`` is what the results store keeps."""

    kind: ClassVar[str] = "dynamic"

    settings: DynamicSettings
    lengths: list[int] = field(default_factory=list)
    strategies: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    features: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def ask(request: dict[str, Any], threads: int) -> Any:
    """One request in a fresh worker whose torch.compile cache starts empty (a cold compile, as
    a fresh job's); raises `CellFailed`."""
    with tempfile.TemporaryDirectory(prefix="twinbench-dynamic-") as cache:
        worker = WorkerProcess(
            request, threads=threads, module=WORKER, env={"TORCHINDUCTOR_CACHE_DIR": cache}
        )
        try:
            return worker.receive(WORKER_TIMEOUT_S, "result")
        finally:
            worker.close()


def run_dynamic(settings: DynamicSettings, progress: Progress = no_progress) -> DynamicReport:
    """Run one scenario; see the module docstring. Raises `TwinbenchError` on a bad setting."""
    settings.validate()
    from twinbench.harness.environment import usable_cores

    threads = settings.threads or usable_cores()
    report = DynamicReport(settings)
    if settings.scenario == "control-flow":
        report.features = _features(settings, threads, report.failures, progress)
        return report
    generate = settings.scenario == "generate"
    longest = settings.longest // 2 if generate else settings.longest  # room for new tokens
    report.lengths = draw_lengths(settings.lengths, settings.step_count, longest, settings.seed)
    runs: dict[str, dict[str, Any]] = {}
    try:
        for name in settings.chosen_strategies:
            runs[name] = _run_strategy(settings, name, report.lengths, threads, progress)
    except KeyboardInterrupt:  # the strategy being run is lost; the finished ones are kept
        report.interrupted = True
        raise SuiteInterrupted(_summarised(report, runs, generate)) from None
    return _summarised(report, runs, generate)


def _summarised(
    report: DynamicReport, runs: dict[str, dict[str, Any]], generate: bool
) -> DynamicReport:
    """``report`` with the strategies in ``runs`` summarised and judged."""
    report.failures = [f"{name}: {run['error']}" for name, run in runs.items() if run["error"]]
    report.strategies = summarize_strategies(runs, report.lengths, generated=generate)
    report.verdict = verdict(report.strategies)
    return report


def _features(
    settings: DynamicSettings, threads: int, failures: list[str], say: Progress
) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    for framework in FRAMEWORKS:
        say(f"feature checks: {framework}")
        request = {
            "kind": "features",
            "framework": framework,
            "backend": settings.torch_backend,
            "sabotage": list(settings.sabotage),
        }
        try:
            cells += ask(request, threads)
        except CellFailed as exc:
            failures.append(f"{framework} feature checks: {exc.error}")
    return cells


def _run_strategy(
    settings: DynamicSettings, name: str, lengths: list[int], threads: int, say: Progress
) -> dict[str, Any]:
    strategy = BY_NAME[name]
    padded = padded_lengths(lengths, strategy.padding, settings.bucket, settings.longest)
    run: dict[str, Any] = {"padded": padded, "repeats": [], "error": None, "status": "ok"}
    request: dict[str, Any] = {
        "kind": "schedule",
        "strategy": name,
        "workload": settings.workload_name,
        "axis": AXIS.get(settings.scenario, 1),
        "phase": settings.phase,
        "size": settings.size,
        "lengths": lengths,
        "padded": padded,
        "seed": settings.seed,
        "backend": settings.torch_backend,
        "leak_padding": settings.leak_padding,
    }
    if settings.scenario == "generate":
        request = {
            "kind": "generate",
            "strategy": name,
            "workload": settings.workload_name,
            "size": settings.size,
            "prompts": prompts(settings, lengths),
            "end_token": END_TOKEN,
            "seed": settings.seed,
            "backend": settings.torch_backend,
        }
    for repeat in range(settings.repeats):
        say(f"{name}: process {repeat + 1} of {settings.repeats}, {len(lengths)} steps")
        try:
            run["repeats"].append(ask(request, threads))
        except CellFailed as exc:
            run.update(status=exc.status, error=exc.error)
            break
    return run


def prompts(settings: DynamicSettings, lengths: Sequence[int]) -> list[list[int]]:
    """One prompt per length, cut from the workload's own token stream."""
    from dataclasses import replace

    from twinbench.registry import builtin

    workload = builtin(settings.workload_name)
    size = workload.size(settings.size)
    stream = workload.batches(replace(size, config={**size.config, "seq_len": settings.longest}),
                              settings.seed)  # fmt: skip
    return [[int(t) for t in next(stream)["tokens"][0, :n]] for n in lengths]


# ---- figures from the raw steps -----------------------------------------------------------------


def summarize_strategies(
    runs: Mapping[str, Mapping[str, Any]], lengths: Sequence[int], *, generated: bool = False
) -> list[dict[str, Any]]:
    """One row per strategy: compiles, compile seconds, schedule wall time with its CI, padding
    share, steady step time per shape, and its losses (``generated``: its tokens) against the
    reference's."""
    reference = runs.get(REFERENCE, {}).get("repeats") or [None]
    rows = []
    for name, run in runs.items():
        row: dict[str, Any] = {
            "strategy": name,
            "framework": BY_NAME[name].framework,
            "status": run["status"],
            "error": run["error"],
            "padded": run["padded"],
            "padding_share": None if generated else padding_share(lengths, run["padded"]),
            "distinct_shapes": len(set(run["padded"])),
        }
        repeats = run["repeats"]
        if repeats:
            row.update(_timing(repeats, run["padded"]))
            judge = _same_tokens if generated else _correctness
            row["correctness"] = judge(name, reference[0], repeats[0])
            if generated:
                row["tokens_generated"] = sum(
                    len(t) - n for t, n in zip(repeats[0]["tokens"], lengths, strict=True)
                )
        rows.append(row)
    return rows


def _timing(repeats: Sequence[Mapping[str, Any]], padded: Sequence[int]) -> dict[str, Any]:
    walls = [float(sum(r["step_s"])) for r in repeats]
    wall = summarize(walls)
    steps = np.array([r["step_s"] for r in repeats])  # (repeats, steps)
    compiled = np.array([r["compiles"] for r in repeats]) > 0
    steady: dict[str, float] = {}
    for shape in sorted(set(padded)):
        at = np.array(padded) == shape
        times = steps[:, at][~compiled[:, at]]
        if times.size:
            steady[str(shape)] = float(np.median(times))
    steady_all = steps[~compiled]
    return {
        "wall_s": walls,
        "wall_median_s": wall.median,
        "wall_ci_low_s": wall.ci_low,
        "wall_ci_high_s": wall.ci_high,
        "compiles": int(sum(repeats[0]["compiles"])),
        "compile_steps": int(np.count_nonzero(repeats[0]["compiles"])),
        "compile_s": float(np.median([sum(r["compile_s"]) for r in repeats])),
        "steady_step_s": steady,
        "steady_median_s": float(np.median(steady_all)) if steady_all.size else None,
        "cumulative_s": np.cumsum(np.median(steps, axis=0)).tolist(),
        "compiles_per_step": list(repeats[0]["compiles"]),
        "losses": list(repeats[0].get("loss", [])),
        "graph_breaks": repeats[0].get("graph_breaks"),
        "recompile_reasons": repeats[0].get("recompile_reasons"),
        # resident high-water mark of the schedule above the built model, median over processes
        "peak_bytes": _median_of([r.get("peak_bytes") for r in repeats]),
    }


def _median_of(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def _correctness(
    name: str, reference: Mapping[str, Any] | None, mine: Mapping[str, Any]
) -> dict[str, Any]:
    if reference is None:
        return {"passed": None, "detail": f"{REFERENCE} did not run: nothing to compare with"}
    ref, losses = reference["loss"], mine["loss"]
    check = compare_curves(
        name,
        ref[:CURVE_STEPS],
        losses[:CURVE_STEPS],
        CURVE_TOLERANCE,
        labels=(REFERENCE, name),
    )
    detail = check.detail or f"losses within tolerance of {REFERENCE}"
    result: dict[str, Any] = {
        "passed": check.passed,
        "max_abs": check.max_abs,
        "first_bad_step": check.first_bad_step,
        "detail": detail,
    }
    if not check.passed or len(ref) <= CURVE_STEPS:
        return result
    later = _drift(ref, losses, start=CURVE_STEPS)
    if later is None:
        return result | {"detail": f"{detail}; later steps within {DRIFT_RTOL:.0%}"}
    step, a, b = later
    return result | {
        "passed": False,
        "first_bad_step": step,
        "detail": f"step {step} drifts past {DRIFT_RTOL:.0%} ({REFERENCE} {a:.6g}, {name} {b:.6g})",
    }


def _drift(
    reference: Sequence[float], mine: Sequence[float], *, start: int
) -> tuple[int, float, float] | None:
    """The first (step, reference, mine) from ``start`` on that is further apart than DRIFT_RTOL
    and the curve tolerance's atol, or not finite; else None."""
    ref, other = np.asarray(reference, np.float64), np.asarray(mine, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(other - ref) <= DRIFT_RTOL * np.abs(ref) + CURVE_TOLERANCE.atol)
    bad[:start] = False
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    return i, float(ref[i]), float(other[i])


def _same_tokens(
    name: str, reference: Mapping[str, Any] | None, mine: Mapping[str, Any]
) -> dict[str, Any]:
    """Greedy decoding is exact: the same tokens for every prompt, the winning logits within
    the parity tolerance of outputs."""
    if reference is None:
        return {"passed": None, "detail": f"{REFERENCE} did not run: nothing to compare with"}
    for i, (want, got) in enumerate(zip(reference["tokens"], mine["tokens"], strict=True)):
        if want != got:
            step = next(
                (k for k, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), len(want)
            )
            return {"passed": False, "detail": f"prompt {i}: tokens differ from position {step}"}
    want_scores = np.concatenate([np.asarray(s, np.float64) for s in reference["scores"]])
    got_scores = np.concatenate([np.asarray(s, np.float64) for s in mine["scores"]])
    check = compare(name, want_scores, got_scores, TOLERANCES["float32"].outputs)
    detail = "same tokens as torch-eager; winning logits within tolerance"
    return {"passed": check.passed, "max_abs": check.max_abs, "detail": check.detail or detail}


def _ratio_text(ratio: Ratio, faster: str, slower: str) -> str:
    if not ratio.significant:
        return f"no significant difference between {faster} and {slower}"
    return f"{faster} {ratio.ratio:.2f}x faster than {slower}"


def verdict(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fastest correct strategy per framework and overall (schedule wall time), the
    best-torch / best-jax ratio with its CI, and the break-even points."""
    ok = [
        r
        for r in rows
        if r["status"] == "ok" and "wall_s" in r and r["correctness"]["passed"] is not False
    ]
    fastest = {
        fw: min(
            (r for r in ok if r["framework"] == fw), key=lambda r: r["wall_median_s"], default=None
        )
        for fw in FRAMEWORKS
    }
    out: dict[str, Any] = {
        "fastest": {fw: r["strategy"] if r else None for fw, r in fastest.items()},
        "excluded": [r["strategy"] for r in rows if r not in ok],
    }
    if ok:
        out["overall"] = min(ok, key=lambda r: r["wall_median_s"])["strategy"]
    torch_best, jax_best = fastest["torch"], fastest["jax"]
    if torch_best and jax_best:
        slow, fast = sorted((torch_best, jax_best), key=lambda r: -r["wall_median_s"])
        ratio = ratio_of_medians(slow["wall_s"], fast["wall_s"])
        out["ratio"] = {
            "slower": slow["strategy"],
            "faster": fast["strategy"],
            "ratio": ratio.ratio,
            "ci_low": ratio.ci_low,
            "ci_high": ratio.ci_high,
            "processes": min(len(slow["wall_s"]), len(fast["wall_s"])),
            "text": _ratio_text(ratio, fast["strategy"], slow["strategy"]),
        }
    by_name = {r["strategy"]: r for r in ok}
    out["break_even"] = break_even(by_name)
    return out


def break_even(rows: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Where one strategy starts to beat another, from the measured compile cost and steady
    step times (a linear model of the schedule: compiles × seconds per compile + steps × step).

    Per-shape jit vs bucketing: distinct shapes beyond which compiling every shape costs more
    than the bucketed strategy's compiles plus its slower (padded) steps. Compiled vs eager:
    steps after which the compile time is paid back by the faster steps.
    """
    found = []
    for per_shape, bucketed in BUCKETING_PAIRS:
        a, b = rows.get(per_shape), rows.get(bucketed)
        if not a or not b or not a["compiles"] or a["steady_median_s"] is None:
            continue
        if b["steady_median_s"] is None:
            continue
        per_compile = a["compile_s"] / a["compiles"]
        steps = len(a["compiles_per_step"])
        extra = b["compile_s"] + steps * (b["steady_median_s"] - a["steady_median_s"])
        found.append({
            "kind": "distinct shapes",
            "strategy": per_shape,
            "against": bucketed,
            "value": max(extra / per_compile, 0.0) if per_compile > 0 else None,
            "detail": f"{per_shape} compiles each distinct shape ({per_compile:.2f} s each); "
            f"beyond this many distinct shapes in {steps} steps, {bucketed} wins",
        })  # fmt: skip
    for compiled, eager in PAYBACK_PAIRS:
        c, e = rows.get(compiled), rows.get(eager)
        if not c or not e or c["steady_median_s"] is None or e["steady_median_s"] is None:
            continue
        saved = e["steady_median_s"] - c["steady_median_s"]
        found.append({
            "kind": "steps",
            "strategy": compiled,
            "against": eager,
            "value": c["compile_s"] / saved if saved > 0 else None,
            "detail": f"{compiled} pays its {c['compile_s']:.2f} s of compiling back after this "
            f"many steps against {eager}" if saved > 0 else
            f"{compiled}'s steady step is not faster than {eager}'s: it never pays back",
        })  # fmt: skip
    return found
