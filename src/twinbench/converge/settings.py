"""What one converge run measures: `ConvergeSettings` and its checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from twinbench.converge.tasks import TASKS, VS_PERSISTENCE, Task, persistence_mse
from twinbench.errors import TwinbenchError
from twinbench.modes import MODES
from twinbench.validation import MAX_SEED, in_range, not_empty, one_of, positive, seed

WORKLOADS = tuple(TASKS)
DEFAULT_MODES = ("torch-eager", "torch-compile", "jax-jit")  # jax-eager: op by op, ask for it
DEFAULT_SEEDS = 5  # MLPerf's minimum for a time-to-train score with extremes dropped
CURVE_STEPS = 20  # first steps whose losses the twins must agree on
STEPS_MARGIN = 0.1  # steps to target agree within 10 % or one evaluation interval
WORKER_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ConvergeSettings:
    """One converge run: which workloads and modes, how many seeds, and to what target.

    ``target``, ``max_steps`` and ``eval_every`` override the workload's own (a target only
    makes sense for one workload's metric, so ``target`` needs exactly one workload). Seeds run
    from ``seed`` to ``seed + seeds - 1``; ``threads`` is each worker's thread budget (None:
    every usable core).
    """

    kind: ClassVar[str] = "converge"

    workloads: tuple[str, ...] = WORKLOADS
    modes: tuple[str, ...] = DEFAULT_MODES
    seeds: int = DEFAULT_SEEDS
    target: float | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    seed: int = 0
    threads: int | None = None
    timeout_s: float = WORKER_TIMEOUT_S

    def validate(self) -> None:
        """Refuse an unknown name, a count below one, or a target outside the metric's range."""
        one_of("workload", self.workloads, WORKLOADS)
        not_empty("workload", self.workloads, WORKLOADS)
        one_of("mode", self.modes, MODES)
        not_empty("mode", self.modes, MODES)
        in_range("--seeds", self.seeds, low=1, integer=True)
        seed(self.seed)
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise TwinbenchError(
                f"--seed {self.seed} with --seeds {self.seeds} runs past the last seed "
                f"{MAX_SEED}; valid: --seed at most {MAX_SEED - self.seeds + 1}"
            )
        for name, value in (("--max-steps", self.max_steps), ("--eval-every", self.eval_every)):
            if value is not None:
                positive(name, value, integer=True)
        if self.threads is not None:
            positive("threads", self.threads, integer=True)
        positive("timeout", self.timeout_s)
        if self.target is not None:
            if len(self.workloads) != 1:
                raise TwinbenchError(
                    f"--target {self.target:g} needs exactly one --workload (each workload has "
                    f"its own metric); got {len(self.workloads)}: {', '.join(self.workloads)}"
                )
            self._check_target(TASKS[self.workloads[0]], self.target)

    @staticmethod
    def _check_target(task: Task, target: float) -> None:
        metric = task.metric
        ok = isinstance(target, int | float) and math.isfinite(target) and target > metric.low
        if not ok or (metric.high is not None and target > metric.high):
            raise TwinbenchError(
                f"--target {target!r} is outside the range of {task.name}'s metric "
                f"({metric.name}); valid: {metric.range_text()}"
            )

    def check_environment(self) -> None:
        """Refuse a dataset whose package is not installed (with the install line), and more
        threads than this process may use cores."""
        from twinbench.converge.datasets import require
        from twinbench.harness.environment import usable_cores

        for name in self.workloads:
            require(TASKS[name].dataset)
        if self.threads is not None:
            in_range("threads", self.threads, low=1, high=usable_cores(), integer=True)

    def resolved(self) -> ConvergeSettings:
        """These settings with the thread count decided: every usable core when none was given."""
        from twinbench.harness.environment import usable_cores

        return replace(self, threads=self.threads or usable_cores())

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def target_for(self, name: str) -> float:
        return TASKS[name].target if self.target is None else float(self.target)

    def max_steps_for(self, name: str) -> int:
        return TASKS[name].max_steps if self.max_steps is None else self.max_steps

    def eval_every_for(self, name: str) -> int:
        return TASKS[name].eval_every if self.eval_every is None else self.eval_every

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the run (the report reads these keys)."""
        return {
            "workloads": list(self.workloads),
            "modes": list(self.modes),
            "seeds": self.seed_list,
            "threads": self.threads,
            "device": "cpu",
            "dtype": "float32",
            "curve_steps": CURVE_STEPS,
            "steps_margin": STEPS_MARGIN,
            "tasks": {
                name: {
                    "dataset": TASKS[name].dataset,
                    "description": TASKS[name].description,
                    "metric": TASKS[name].metric.name,
                    "higher_is_better": TASKS[name].metric.higher_is_better,
                    "target": self.target_for(name),
                    "max_steps": self.max_steps_for(name),
                    "eval_every": self.eval_every_for(name),
                    "batch_size": TASKS[name].batch_size,
                    "optimizer": f"{TASKS[name].optimizer.name} lr {TASKS[name].optimizer.lr:g}",
                    "persistence_mse": persistence_mse(TASKS[name])
                    if TASKS[name].metric is VS_PERSISTENCE
                    else None,
                }
                for name in self.workloads
            },
        }
