"""The optimizer suite: first-order trajectories and second-order solves, in both frameworks.

``run_optim_suite`` returns an `OptimReport`; ``render_markdown`` turns it into tables and
``save`` stores it as a run of kind ``optim`` in the results database.

Second-order wall time: each (problem, method, framework) gets one warm-up call (reported as
``first_call_s``; for JAX it includes tracing and XLA compilation), then ``repeats`` timed calls
with ``time.perf_counter`` around the whole solve, data already in place, results fetched to the
host (which synchronises JAX); the median is reported. Both frameworks run in this one process
with their default thread pools.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinbench.errors import TwinbenchError
from twinbench.optim_suite.first_order import (
    FIRST_ORDER,
    FirstOrderResult,
    compare_first_order,
    validate_first_order,
)
from twinbench.optim_suite.methods import IMPLEMENTATIONS, METHODS, Outcome
from twinbench.optim_suite.problems import (
    DEFAULT_DIMS,
    PROBLEMS,
    QUICK_DIMS,
    Problem,
    make_problem,
    validate_problem,
)
from twinbench.registry import EXAMPLES
from twinbench.spec import SIZE_NAMES

SECOND_ORDER_FRAMEWORKS = ("torch", "jax")


@dataclass
class SecondOrderResult:
    """One (problem, method, framework) solve.

    ``status``: converged (the solver's own ∞-norm gradient test passed), failed (stopped
    without converging: see ``note``), diverged (NaN/Inf: the numbers are not a result) or error.
    Distances are ∞-norms: to the other framework's minimiser for the same method, and to the
    problem's reference minimiser (``reference_kind`` says where it comes from).
    """

    problem: str
    dim: int
    method: str
    framework: str
    implementation: str
    status: str
    iterations: int | None = None
    function_evals: int | None = None
    hessian_evals: int | None = None
    final_objective: float | None = None  # evaluated in NumPy float64, not by the framework
    grad_norm: float | None = None  # ∞-norm, NumPy float64
    wall_s: float | None = None  # median of the timed calls
    wall_samples: list[float] = field(default_factory=list)
    first_call_s: float | None = None
    distance_other: float | None = None
    distance_reference: float | None = None
    reference_kind: str = "none"
    note: str = ""
    x: list[float] | None = None


@dataclass
class OptimReport:
    """Everything one run of the optimizer suite found."""

    settings: dict[str, Any]
    first_order: list[FirstOrderResult] = field(default_factory=list)
    second_order: list[SecondOrderResult] = field(default_factory=list)

    @property
    def first_order_agree(self) -> bool:
        """True when every first-order trajectory comparison agreed within tolerance."""
        return all(r.status == "agree" for r in self.first_order)

    def result(self, problem: str, method: str, framework: str) -> SecondOrderResult:
        """The second-order result for one cell (KeyError-free: TwinbenchError if absent)."""
        for r in self.second_order:
            if (r.problem, r.method, r.framework) == (problem, method, framework):
                return r
        raise TwinbenchError(f"no result for {problem}/{method}/{framework} in this report")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite floats become None."""
        return _finite(
            {
                "settings": self.settings,
                "first_order": [asdict(r) for r in self.first_order],
                "second_order": [asdict(r) for r in self.second_order],
            }
        )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _check_names(kind: str, names: Sequence[str], valid: Sequence[str]) -> list[str]:
    for name in names:
        if name not in valid:
            raise TwinbenchError(f"unknown {kind} '{name}'; valid: {', '.join(valid)}")
    return list(names)


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    if bad or (integer and not isinstance(value, int)) or not math.isfinite(value):
        kind = "a positive integer" if integer else "a positive number"
        raise TwinbenchError(f"{name} must be {kind}, got {value!r}")


def _preparers() -> dict[str, Callable[..., Callable[[], Outcome]]]:
    from twinbench.optim_suite import jax_methods, torch_methods

    return {"torch": torch_methods.prepare, "jax": jax_methods.prepare}


def solve_second_order(
    problem: Problem,
    method: str,
    framework: str,
    *,
    gtol: float = 1e-6,
    max_iter: int = 500,
    repeats: int = 3,
) -> SecondOrderResult:
    """Solve ``problem`` with ``method`` in ``framework``: one warm-up call, ``repeats`` timed."""
    _check_names("method", [method], METHODS)
    _check_names("framework", [framework], SECOND_ORDER_FRAMEWORKS)
    result = SecondOrderResult(
        problem.name,
        problem.dim,
        method,
        framework,
        IMPLEMENTATIONS[(method, framework)],
        "error",
        reference_kind=problem.reference_kind,
    )
    try:
        solve = _preparers()[framework](problem, method, gtol=gtol, max_iter=max_iter)
        start = time.perf_counter()
        outcome = solve()
        result.first_call_s = time.perf_counter() - start
        for _ in range(repeats):
            start = time.perf_counter()
            outcome = solve()
            result.wall_samples.append(time.perf_counter() - start)
    except TwinbenchError:
        raise
    except Exception as exc:  # a solver that raises is recorded; the suite goes on
        result.note = f"{type(exc).__name__}: {exc}"
        return result
    result.wall_s = statistics.median(result.wall_samples) if result.wall_samples else None
    result.iterations, result.function_evals = outcome.iterations, outcome.function_evals
    result.hessian_evals = outcome.hessian_evals or None
    result.note = outcome.note
    x = outcome.x
    with np.errstate(all="ignore"):
        objective = problem.value(x) if np.isfinite(x).all() else math.nan
        grad = problem.grad(x) if np.isfinite(x).all() else np.full_like(x, np.nan)
    if outcome.note == "non-finite" or not (math.isfinite(objective) and np.isfinite(grad).all()):
        result.status = "diverged"
        result.note = result.note or "non-finite iterate"
        return result
    result.status = "converged" if outcome.converged else "failed"
    result.final_objective = objective
    result.grad_norm = float(np.abs(grad).max())
    result.x = [float(v) for v in x]
    if problem.reference is not None:
        result.distance_reference = float(np.abs(x - problem.reference).max())
    return result


def run_optim_suite(
    *,
    problems: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    dim: int | None = None,
    gtol: float = 1e-6,
    max_iter: int = 500,
    repeats: int = 5,
    workloads: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    size: str = "tiny",
    steps: int = 200,
    seed: int = 0,
    quick: bool = False,
    first_order: bool = True,
    second_order: bool = True,
    progress: Callable[[str], None] | None = None,
) -> OptimReport:
    """Run the optimizer suite and return its report. Every input is checked before any work.

    First order: each optimizer in ``optimizers`` (default all of `FIRST_ORDER`) on each
    workload (default the seeds' examples, `twinbench.registry.EXAMPLES`) at ``size`` for
    ``steps`` steps. Second order: each method
    (default all of `METHODS`) on each problem (default all of `PROBLEMS`) in ``dim`` unknowns
    (default per problem, `DEFAULT_DIMS`), to ∞-norm gradient ``gtol``, at most ``max_iter``
    iterations, timed over ``repeats`` calls. ``quick`` uses `QUICK_DIMS` and one timed call.
    ``progress`` is called with a short line before each cell.
    """
    problem_names = _check_names("problem", problems or PROBLEMS, PROBLEMS)
    method_names = _check_names("method", methods or METHODS, METHODS)
    workload_names = _check_names("workload", workloads or EXAMPLES, EXAMPLES)
    optimizer_names = _check_names("optimizer", optimizers or FIRST_ORDER, FIRST_ORDER)
    if size not in SIZE_NAMES:
        raise TwinbenchError(f"unknown size '{size}'; valid: {', '.join(SIZE_NAMES)}")
    _positive("gtol (gradient tolerance)", gtol)
    _positive("max_iter", max_iter, integer=True)
    _positive("repeats", repeats, integer=True)
    _positive("steps", steps, integer=True)
    if dim is not None:
        _positive("dimension", dim, integer=True)
    for name in problem_names:
        validate_problem(name, dim)
    for workload in workload_names:
        for optimizer in optimizer_names:
            validate_first_order(workload, optimizer)
    if quick:
        repeats = 1
    dims = {p: dim or (QUICK_DIMS if quick else DEFAULT_DIMS)[p] for p in problem_names}
    say = progress or (lambda _line: None)
    report = OptimReport(
        settings={
            "problems": problem_names,
            "methods": method_names,
            "dims": dims,
            "gtol": gtol,
            "gradient_norm": "infinity",
            "max_iter": max_iter,
            "repeats": repeats,
            "workloads": workload_names if first_order else [],
            "optimizers": optimizer_names if first_order else [],
            "size": size,
            "steps": steps,
            "seed": seed,
            "quick": quick,
            "second_order_dtype": "float64",
            "first_order_dtype": "float32",
            "timing": "median of `repeats` perf_counter calls after one warm-up call",
        }
    )
    if first_order:
        for workload in workload_names:
            for optimizer in optimizer_names:
                say(f"first order: {workload} ({size}) {optimizer}, {steps} steps")
                report.first_order.append(
                    compare_first_order(workload, optimizer, size=size, steps=steps, seed=seed)
                )
    if second_order:
        for name in problem_names:
            problem = make_problem(name, dims[name], seed)
            for method in method_names:
                pair = []
                for framework in SECOND_ORDER_FRAMEWORKS:
                    say(f"second order: {name} (d={dims[name]}) {method} [{framework}]")
                    pair.append(
                        solve_second_order(
                            problem,
                            method,
                            framework,
                            gtol=gtol,
                            max_iter=max_iter,
                            repeats=repeats,
                        )
                    )
                _pair_distances(pair)
                report.second_order.extend(pair)
    return report


def _pair_distances(pair: list[SecondOrderResult]) -> None:
    a, b = pair
    if a.x is not None and b.x is not None:
        distance = float(np.abs(np.asarray(a.x) - np.asarray(b.x)).max())
        a.distance_other = b.distance_other = distance


def _fmt(value: float | int | None, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float) else str(value)


def first_order_rows(report: OptimReport) -> list[list[str]]:
    """The first-order table as strings, header first."""
    rows = [
        [
            "workload",
            "optimizer",
            "steps",
            "status",
            "max abs",
            "max rel",
            "first bad step",
            "final loss torch",
            "final loss jax",
        ]
    ]
    for r in report.first_order:
        rows.append([
            f"{r.workload} ({r.size})", r.optimizer, str(r.steps),
            r.status if r.error is None else f"error: {r.error}",
            _fmt(r.max_abs), _fmt(r.max_rel), _fmt(r.first_bad_step),
            _fmt(r.torch_final, ".6g"), _fmt(r.jax_final, ".6g"),
        ])  # fmt: skip
    return rows


def second_order_rows(report: OptimReport) -> list[list[str]]:
    """The second-order table as strings, header first (one row per problem/method/framework)."""
    rows = [
        [
            "problem",
            "method",
            "framework",
            "status",
            "iters",
            "f evals",
            "wall ms (median)",
            "first call ms",
            "final objective",
            "‖g‖∞",
            "Δ other fw",
            "Δ reference",
        ]
    ]
    for r in report.second_order:
        status = r.status if not r.note else f"{r.status} ({r.note})"
        wall = None if r.wall_s is None else 1e3 * r.wall_s
        first = None if r.first_call_s is None else 1e3 * r.first_call_s
        rows.append([
            f"{r.problem} (d={r.dim})", r.method, r.framework, status,
            _fmt(r.iterations), _fmt(r.function_evals), _fmt(wall), _fmt(first),
            _fmt(r.final_objective, ".10g"), _fmt(r.grad_norm, ".2g"),
            _fmt(r.distance_other, ".2g"),
            "—" if r.distance_reference is None
            else f"{r.distance_reference:.2g} ({r.reference_kind})",
        ])  # fmt: skip
    return rows


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for row in rows[1:]:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def render_markdown(report: OptimReport) -> str:
    """The report as Markdown: settings, the first-order table, the second-order table."""
    s = report.settings
    parts = ["# twinbench optim", ""]
    if report.first_order:
        parts += [
            f"## First order: loss trajectories, float32, {s['steps']} steps, size {s['size']}",
            "",
            "Tolerance at step k: (1 + k) × (atol 1e-6 + rtol 1e-5 · |torch loss|).",
            "",
            _markdown_table(first_order_rows(report)),
            "",
        ]
    if report.second_order:
        parts += [
            f"## Second order: float64, ‖∇f‖∞ ≤ {s['gtol']:g}, at most {s['max_iter']} iterations",
            "",
            f"Wall time: {s['timing']} (repeats = {s['repeats']}); first call includes JIT.",
            "",
            _markdown_table(second_order_rows(report)),
            "",
            "Implementations: "
            + "; ".join(f"{m}/{fw}: {label}" for (m, fw), label in IMPLEMENTATIONS.items()),
            "",
        ]
    return "\n".join(parts)


def save(report: OptimReport, out_dir: str | Path) -> int:
    """Store ``report`` as a finished run of kind ``optim``; returns the run id."""
    from twinbench.harness.environment import fingerprint
    from twinbench.store import DB_NAME, ResultStore

    with ResultStore(Path(out_dir) / DB_NAME) as store:
        run_id = store.start_run(
            environment=fingerprint(), settings={"kind": "optim", **_finite(report.settings)}
        )
        store.set_run_info(run_id, "optim", report.to_dict())
        store.finish_run(run_id, status="finished")
    return run_id
