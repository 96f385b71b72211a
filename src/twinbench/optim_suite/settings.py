"""What one optimizer suite run measures: `OptimSettings` and its checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twinbench.optim_suite.first_order import FIRST_ORDER
from twinbench.optim_suite.methods import METHODS
from twinbench.optim_suite.problems import DEFAULT_DIMS, PROBLEMS, QUICK_DIMS, validate_problem
from twinbench.registry import EXAMPLES
from twinbench.spec import SIZE_NAMES
from twinbench.validation import one_of, positive, seed

TIMING = (
    "median of `repeats` samples after one first call; a sample is the mean call time of a "
    "block of calls lasting at least 10 ms (one call when a solve takes longer)"
)


@dataclass(frozen=True)
class OptimSettings:
    """One optimizer suite run.

    First order: each optimizer in ``optimizers`` on each of ``workloads`` at size ``size`` for
    ``steps`` steps. Second order: each of ``methods`` on each of ``problems`` in ``dim``
    unknowns (None: per problem, `DEFAULT_DIMS`), to ∞-norm gradient ``gtol``, at most
    ``max_iter`` iterations, timed over ``repeats`` samples. ``quick`` uses `QUICK_DIMS` and one
    sample; ``first_order``/``second_order`` switch each half off.
    """

    kind: ClassVar[str] = "optim"

    problems: tuple[str, ...] = PROBLEMS
    methods: tuple[str, ...] = METHODS
    dim: int | None = None
    gtol: float = 1e-6
    max_iter: int = 500
    repeats: int = 5
    workloads: tuple[str, ...] = EXAMPLES
    optimizers: tuple[str, ...] = FIRST_ORDER
    size: str = "tiny"
    steps: int = 200
    seed: int = 0
    quick: bool = False
    first_order: bool = True
    second_order: bool = True

    def validate(self) -> None:
        """Refuse an unknown name, a count or tolerance that is not a finite number > 0, or a
        dimension a problem cannot have."""
        seed(self.seed)
        one_of("problem", self.problems, PROBLEMS)
        one_of("method", self.methods, METHODS)
        one_of("workload", self.workloads, EXAMPLES)
        one_of("optimizer", self.optimizers, FIRST_ORDER)
        one_of("size", [self.size], SIZE_NAMES)
        positive("gtol (gradient tolerance)", self.gtol)
        for name, value in (
            ("max_iter", self.max_iter),
            ("repeats", self.repeats),
            ("steps", self.steps),
        ):
            positive(name, value, integer=True)
        if self.dim is not None:
            positive("dimension", self.dim, integer=True)
            for problem in self.problems:
                validate_problem(problem, self.dim)

    @property
    def dims(self) -> dict[str, int]:
        """Each problem's number of unknowns."""
        preset = QUICK_DIMS if self.quick else DEFAULT_DIMS
        return {p: self.dim or preset[p] for p in self.problems}

    @property
    def timed_repeats(self) -> int:
        """Timed samples per solve: ``repeats``, or one when ``quick``."""
        return 1 if self.quick else self.repeats

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the run (the report and older databases read these keys)."""
        return {
            "problems": list(self.problems),
            "methods": list(self.methods),
            "dims": self.dims,
            "gtol": self.gtol,
            "gradient_norm": "infinity",
            "max_iter": self.max_iter,
            "repeats": self.timed_repeats,
            "workloads": list(self.workloads) if self.first_order else [],
            "optimizers": list(self.optimizers) if self.first_order else [],
            "size": self.size,
            "steps": self.steps,
            "seed": self.seed,
            "quick": self.quick,
            "second_order_dtype": "float64",
            "first_order_dtype": "float32",
            "timing": TIMING,
        }
