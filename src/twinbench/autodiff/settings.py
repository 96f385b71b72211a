"""What one autodiff suite run measures: `AutodiffSettings`, its presets and its checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from twinbench.autodiff.functions import (
    CHECK_SIZES,
    FUNCTIONS,
    MIN_DIM,
    QUICK_CHECK_SIZES,
    QUICK_TIMING_SIZES,
    TIMING_SIZES,
    TRANSFORMS,
    Sizes,
)
from twinbench.validation import in_range, not_empty, one_of, positive, seed

MODES = ("eager", "compiled")
SCALING_BATCHES = tuple(2**k for k in range(9))  # 1 … 256
QUICK_SCALING_BATCHES = (1, 4, 16)
BUDGET_S = 0.25
QUICK_BUDGET_S = 0.05
MEMORY = {"depth": 16, "width": 256, "batch": 4096}
QUICK_MEMORY = {"depth": 4, "width": 32, "batch": 64}


@dataclass(frozen=True)
class AutodiffSettings:
    """One autodiff suite run: which problems and transformations, at which sizes, how long.

    ``dim``/``hidden``/``batch`` size the timed problems (Rosenbrock dimension, MLP hidden width,
    MLP batch; None: the preset's); checks always run at small sizes because finite differences
    cost O(n) calls. ``batch_sizes`` are the per-example-gradient batches (None: the preset's,
    empty: no scaling step); ``budget_s`` is the timing budget per measurement (None: the
    preset's); ``threads`` the threads of each framework's worker (None: every usable core).
    ``quick`` picks the small presets.
    """

    kind: ClassVar[str] = "autodiff"

    functions: tuple[str, ...] = FUNCTIONS
    transforms: tuple[str, ...] = TRANSFORMS
    modes: tuple[str, ...] = MODES
    quick: bool = False
    dim: int | None = None
    hidden: int | None = None
    batch: int | None = None
    batch_sizes: tuple[int, ...] | None = None
    threads: int | None = None
    budget_s: float | None = None
    memory: bool = True
    seed: int = 0

    def validate(self) -> None:
        """Refuse an unknown name or a size, count or budget that is not a finite number > 0."""
        seed(self.seed)
        for what, given, valid in (
            ("function", self.functions, FUNCTIONS),
            ("transformation", self.transforms, TRANSFORMS),
        ):
            one_of(what, given, valid)
            not_empty(what, given, valid)
        one_of("mode", self.modes, MODES)
        if self.dim is not None:
            in_range("dim", self.dim, low=MIN_DIM, integer=True)
        for name, value in (("hidden", self.hidden), ("batch", self.batch)):
            if value is not None:
                positive(name, value, integer=True)
        for size in self.batch_sizes or ():
            positive("batch size", size, integer=True)
        if self.threads is not None:
            positive("threads", self.threads, integer=True)
        if self.budget_s is not None:
            positive("budget", self.budget_s)

    def check_environment(self) -> None:
        """Refuse more threads than this process may use cores (a check of the machine)."""
        from twinbench.harness.environment import usable_cores

        if self.threads is not None:
            in_range("threads", self.threads, low=1, high=usable_cores(), integer=True)

    def resolved(self) -> AutodiffSettings:
        """These settings with the thread count decided: every usable core when none was given."""
        from twinbench.harness.environment import usable_cores

        return replace(self, threads=self.threads or usable_cores())

    @property
    def check_sizes(self) -> Sizes:
        """The sizes of the float64 correctness checks."""
        return QUICK_CHECK_SIZES if self.quick else CHECK_SIZES

    @property
    def timing_sizes(self) -> Sizes:
        """The sizes of the timed problems: the preset with ``dim``/``hidden``/``batch`` applied."""
        given = {"dim": self.dim, "hidden": self.hidden, "batch": self.batch}
        preset = QUICK_TIMING_SIZES if self.quick else TIMING_SIZES
        return replace(preset, **{name: v for name, v in given.items() if v is not None})

    @property
    def scaling_batches(self) -> tuple[int, ...]:
        """The per-example-gradient batch sizes."""
        if self.batch_sizes is not None:
            return self.batch_sizes
        return QUICK_SCALING_BATCHES if self.quick else SCALING_BATCHES

    @property
    def budget(self) -> float:
        """Seconds of timing per measurement."""
        if self.budget_s is not None:
            return self.budget_s
        return QUICK_BUDGET_S if self.quick else BUDGET_S

    @property
    def memory_sizes(self) -> dict[str, int]:
        """The deep MLP of the memory step: depth, width and batch."""
        return QUICK_MEMORY if self.quick else MEMORY

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the run (the report and older databases read these keys)."""
        return {
            "functions": list(self.functions),
            "transforms": list(self.transforms),
            "modes": list(self.modes),
            "quick": self.quick,
            "threads": self.threads,
            "budget_s": self.budget,
            "seed": self.seed,
            "batch_sizes": list(self.scaling_batches),
            "check_sizes": asdict(self.check_sizes),
            "timing_sizes": asdict(self.timing_sizes),
            "memory": self.memory_sizes if self.memory else None,
            "timing_dtype": "float32",
            "check_dtype": "float64",
            "device": "cpu",
        }
