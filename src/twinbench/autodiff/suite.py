"""The autodiff suite: checks first, then speed, vectorisation scaling, memory and features.

`run_autodiff` runs each framework in its own worker process (``twinbench.autodiff.worker``,
started through `twinbench.harness.process` with the run's thread budget), in this order:

1. float64 correctness checks (``checks``) for every (function, transformation, framework);
2. timing, float32, eager and compiled, of every cell whose check passed (parity first: a
   cell that fails its check gets no speed number);
3. per-example gradients of the MLP at batch sizes 1, 2, 4, …, 256;
4. peak memory of one gradient step of a deep MLP with and without checkpointing, one fresh
   worker per (framework, checkpointing);
5. the feature table, built from the check results (and the compiled cells' outcomes).

Memory is reported two ways, because neither alone is enough on a CPU: the process's RSS
high-water increase over its RSS after setup (the same yardstick for both frameworks, but it
includes allocator slack), and each framework's own accounting (bytes PyTorch's autograd saves
for backward, via ``saved_tensors_hooks``; XLA's ``memory_analysis()`` temporary bytes), which is
exact about activations but not comparable across frameworks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from twinbench.autodiff.checks import CheckResult, Evaluation, judge
from twinbench.autodiff.functions import TRANSFORMS
from twinbench.autodiff.settings import AutodiffSettings
from twinbench.harness.process import CellFailed, one_shot
from twinbench.harness.stats import Ratio, ratio_of_medians
from twinbench.modes import FRAMEWORKS, mode_of
from twinbench.suite import Progress, WorkerFailures, no_progress

WORKER = "twinbench.autodiff.worker"
WORKER_TIMEOUT_S = 600
SCALING_TRANSFORM = "per_example_grad"


@dataclass(frozen=True)
class FeatureCell:
    """Whether one framework does one transformation, and on what evidence.

    ``support`` is ``native`` or ``composed`` only when every check behind it passed; otherwise
    ``cannot`` (the framework raised), ``wrong`` (the numbers failed), ``diverged`` (NaN) or
    ``not run``. ``compiled`` says how the compiled (torch.compile / jax.jit) cells went.
    """

    transform: str
    framework: str
    support: str
    api: str
    evidence: dict[str, str]  # function -> check status
    compiled: str | None = None
    detail: str = ""


@dataclass
class AutodiffReport(WorkerFailures):
    """Everything one suite run measured; ``to_dict()`` is what the results store keeps."""

    kind: ClassVar[str] = "autodiff"

    settings: AutodiffSettings
    checks: list[CheckResult]
    timings: list[dict[str, Any]]
    scaling: list[dict[str, Any]]
    memory: list[dict[str, Any]]
    features: list[FeatureCell]
    comparisons: list[dict[str, Any]]
    failures: list[str] = field(default_factory=list)

    @property
    def all_checks_passed(self) -> bool:
        """True when every correctness check passed."""
        return all(c.passed for c in self.checks)


# ---- the feature table and comparisons ----------------------------------------------------------

_FAILURE_SUPPORT = (("error", "cannot"), ("fail", "wrong"), ("nan", "diverged"))


def feature_table(
    checks: Sequence[CheckResult], timings: Sequence[dict[str, Any]] = ()
) -> list[FeatureCell]:
    """One cell per (transformation, framework), derived from the check results only.

    A cell reads ``native``/``composed`` only if every check behind it passed.
    """
    cells = []
    for transform in TRANSFORMS:
        for framework in FRAMEWORKS:
            mine = [c for c in checks if (c.transform, c.framework) == (transform, framework)]
            if not mine:
                continue
            statuses = {c.status for c in mine}
            support = next((s for st, s in _FAILURE_SUPPORT if st in statuses), mine[0].kind)
            detail = next((c.detail for c in mine if not c.passed), "")
            compiled = [
                t
                for t in timings
                if (t["transform"], t["framework"], t["mode"]) == (transform, framework, "compiled")
            ]
            compiled_text = None
            if compiled:
                errors = [t["error"] for t in compiled if t["status"] != "ok"]
                compiled_text = f"error: {errors[0]}" if errors else "ok"
            cells.append(
                FeatureCell(
                    transform,
                    framework,
                    support,
                    mine[0].api,
                    {c.function: c.status for c in mine},
                    compiled_text,
                    detail,
                )
            )
    return cells


def _ratio_text(ratio: Ratio) -> str:
    if not ratio.significant:
        return "no significant difference"
    if ratio.ratio > 1:
        return f"jax {ratio.ratio:.2f}x faster"
    return f"torch {1 / ratio.ratio:.2f}x faster"


def compare(timings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """torch / jax time ratio with a bootstrap CI for each cell both frameworks timed."""
    ok = {
        (t["function"], t["transform"], t.get("batch"), t["mode"], t["framework"]): t
        for t in timings
        if t["status"] == "ok"
    }
    rows = []
    for (function, transform, batch, mode, framework), cell in ok.items():
        other = ok.get((function, transform, batch, mode, "jax"))
        if framework != "torch" or other is None:
            continue
        ratio = ratio_of_medians(cell["samples"], other["samples"])
        rows.append(
            {
                "function": function,
                "transform": transform,
                "batch": batch,
                "mode": mode,
                "ratio_torch_over_jax": ratio.ratio,
                "ci_low": ratio.ci_low,
                "ci_high": ratio.ci_high,
                "verdict": _ratio_text(ratio),
            }
        )
    return rows


# ---- the suite ----------------------------------------------------------------------------------


class _Workers:
    """Starts one worker per request; a failed one is recorded and answers None."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.failures: list[str] = []

    def ask(self, request: dict[str, Any]) -> Any:
        try:
            return one_shot(request, threads=self.threads, timeout=WORKER_TIMEOUT_S, module=WORKER)
        except CellFailed as exc:
            self.failures.append(f"{request['framework']} {request['kind']}: {exc.error}")
            return None


def run_autodiff(settings: AutodiffSettings, progress: Progress = no_progress) -> AutodiffReport:
    """Run the autodiff suite; see the module docstring for what it does, in which order.

    Raises `TwinbenchError` (one line) on a bad setting or more threads than usable cores.
    """
    settings.validate()
    settings.check_environment()
    settings = settings.resolved()
    workers = _Workers(settings.threads or 1)
    checks = _check(settings, workers, progress)
    passed = {(c.function, c.transform, c.framework) for c in checks if c.passed}
    timings, scaling = _time(settings, passed, workers, progress)
    memory = _measure_memory(settings, workers, progress) if settings.memory else []
    return AutodiffReport(
        settings=settings,
        checks=checks,
        timings=timings,
        scaling=scaling,
        memory=memory,
        features=feature_table(checks, timings),
        comparisons=compare(timings) + compare(scaling),
        failures=workers.failures,
    )


def _check(settings: AutodiffSettings, workers: _Workers, say: Progress) -> list[CheckResult]:
    evaluations: list[Evaluation] = []
    for framework in FRAMEWORKS:
        say(f"checking {framework} (float64, finite differences)")
        answer = workers.ask(
            {
                "kind": "check",
                "framework": framework,
                "functions": list(settings.functions),
                "transforms": list(settings.transforms),
                "sizes": asdict(settings.check_sizes),
                "seed": settings.seed,
            }
        )
        evaluations += [Evaluation.from_dict(e) for e in answer or []]
    return judge(evaluations)


def _time(
    settings: AutodiffSettings,
    passed: set[tuple[str, str, str]],
    workers: _Workers,
    say: Progress,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The timing and the scaling cells of every (function, transformation) that passed."""
    timings: list[dict[str, Any]] = []
    scaling: list[dict[str, Any]] = []
    for framework in FRAMEWORKS:
        cells = [
            {"function": f, "transform": t, "mode": m, "batch": None}
            for f in settings.functions
            for t in settings.transforms
            for m in settings.modes
            if (f, t, framework) in passed
        ]
        scale_cells = [
            {"function": "mlp", "transform": SCALING_TRANSFORM, "mode": m, "batch": b}
            for m in settings.modes
            for b in settings.scaling_batches
            if ("mlp", SCALING_TRANSFORM, framework) in passed
        ]
        for kind, todo, sink in (("timing", cells, timings), ("scaling", scale_cells, scaling)):
            if not todo:
                continue
            say(f"timing {framework}: {len(todo)} {kind} cells")
            answer = workers.ask(
                {
                    "kind": "time",
                    "framework": framework,
                    "cells": todo,
                    "sizes": asdict(settings.timing_sizes),
                    "seed": settings.seed,
                    "budget_s": settings.budget,
                }
            )
            for cell in answer or []:
                cell["mode_label"] = mode_of(framework, compiled=cell["mode"] == "compiled")
                sink.append(cell)
    return timings, scaling


def _measure_memory(
    settings: AutodiffSettings, workers: _Workers, say: Progress
) -> list[dict[str, Any]]:
    rows = []
    for framework in FRAMEWORKS:
        for remat in (False, True):
            say(f"memory {framework}, checkpointing {'on' if remat else 'off'}")
            answer = workers.ask(
                {"kind": "memory", "framework": framework, "remat": remat, **settings.memory_sizes}
            )
            if answer is not None:
                rows.append(answer)
    return rows
