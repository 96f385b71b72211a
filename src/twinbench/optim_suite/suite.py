"""The optimizer suite: first-order trajectories and second-order solves, in both frameworks.

`run_optim` returns an `OptimReport`; ``view`` renders its stored dict as Markdown tables and
`twinbench.suite.record` stores it as a run of kind ``optim``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from twinbench.errors import TwinbenchError
from twinbench.optim_suite.first_order import FirstOrderResult, compare_first_order
from twinbench.optim_suite.problems import make_problem
from twinbench.optim_suite.second_order import (
    FRAMEWORKS,
    SecondOrderResult,
    pair_distances,
    solve_second_order,
)
from twinbench.optim_suite.settings import OptimSettings
from twinbench.store import json_ready
from twinbench.suite import Progress, no_progress


@dataclass
class OptimReport:
    """Everything one run of the optimizer suite found."""

    kind: ClassVar[str] = "optim"

    settings: OptimSettings
    first_order: list[FirstOrderResult] = field(default_factory=list)
    second_order: list[SecondOrderResult] = field(default_factory=list)

    @property
    def first_order_agree(self) -> bool:
        """True when every first-order trajectory comparison agreed within tolerance."""
        return all(r.status == "agree" for r in self.first_order)

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The settings as stored with the run."""
        return dict(json_ready(self.settings.to_dict()))

    @property
    def failed(self) -> bool:
        """Never: a disagreeing trajectory or a solver that fails is a finding shown in its row,
        not a failed run."""
        return False

    def result(self, problem: str, method: str, framework: str) -> SecondOrderResult:
        """The second-order result for one cell (TwinbenchError if absent)."""
        for r in self.second_order:
            if (r.problem, r.method, r.framework) == (problem, method, framework):
                return r
        raise TwinbenchError(f"no result for {problem}/{method}/{framework} in this report")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite floats become None."""
        return dict(
            json_ready(
                {
                    "settings": self.settings.to_dict(),
                    "first_order": [asdict(r) for r in self.first_order],
                    "second_order": [asdict(r) for r in self.second_order],
                }
            )
        )


def run_optim(settings: OptimSettings, progress: Progress = no_progress) -> OptimReport:
    """Run the optimizer suite (see `OptimSettings`); every setting is checked before any work."""
    settings.validate()
    report = OptimReport(settings)
    if settings.first_order:
        for workload in settings.workloads:
            for optimizer in settings.optimizers:
                progress(
                    f"first order: {workload} ({settings.size}) {optimizer}, {settings.steps} steps"
                )
                report.first_order.append(
                    compare_first_order(
                        workload,
                        optimizer,
                        size=settings.size,
                        steps=settings.steps,
                        seed=settings.seed,
                    )
                )
    if settings.second_order:
        report.second_order = _second_order(settings, progress)
    return report


def _second_order(settings: OptimSettings, progress: Progress) -> list[SecondOrderResult]:
    results: list[SecondOrderResult] = []
    for name, dim in settings.dims.items():
        problem = make_problem(name, dim, settings.seed)
        for method in settings.methods:
            pair = []
            for framework in FRAMEWORKS:
                progress(f"second order: {name} (d={dim}) {method} [{framework}]")
                pair.append(
                    solve_second_order(
                        problem,
                        method,
                        framework,
                        gtol=settings.gtol,
                        max_iter=settings.max_iter,
                        repeats=settings.timed_repeats,
                    )
                )
            pair_distances(pair)
            results.extend(pair)
    return results
