"""What one deploy suite run measures: `DeploySettings`, the deployment paths and their groups."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from twinbench.errors import TwinbenchError
from twinbench.modes import Framework
from twinbench.registry import BUILTIN
from twinbench.spec import SIZE_NAMES
from twinbench.validation import in_range, not_empty, one_of, positive, seed

# Each deployment path: the framework that exports, and the runtime that serves the artefact.
PATHS: dict[str, tuple[Framework, str]] = {
    "torch-aoti": ("torch", "AOTInductor"),
    "jax-stablehlo": ("jax", "jax.export (StableHLO)"),
    "torch-onnx": ("torch", "ONNX Runtime"),
    "jax-onnx": ("jax", "ONNX Runtime"),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "native": ("torch-aoti", "jax-stablehlo"),
    "onnx": ("torch-onnx", "jax-onnx"),
    "all": tuple(PATHS),
}
ARTEFACTS = "deploy-artefacts"  # the folder under --out that holds every run's artefacts


def paths_named(names: Sequence[str]) -> tuple[str, ...]:
    """The paths that group names (``native``, ``onnx``, ``all``) and path names pick, in the
    canonical order; a one-line error for a name that is neither."""
    valid = (*GROUPS, *PATHS)
    one_of("deployment path", names, valid)
    not_empty("deployment path", names, valid)
    chosen = {p for name in names for p in GROUPS.get(name, (name,))}
    return tuple(p for p in PATHS if p in chosen)


def framework_of(path: str) -> Framework:
    """The framework whose exporter writes ``path``'s artefact."""
    return PATHS[path][0]


def group_of(path: str) -> str:
    """``native`` or ``onnx``: the paths compared with each other."""
    return next(g for g, members in GROUPS.items() if g != "all" and path in members)


@dataclass(frozen=True)
class DeploySettings:
    """One deploy suite run: which workloads, at which size, along which deployment paths.

    ``batch_sizes`` are the batches each artefact is called at (None: 1 and the size's batch);
    ``repeats`` the fresh serving processes per path (each gives one cold start and one group of
    latency samples, so the CIs cover the processes' disagreement); ``budget_s`` the most seconds
    of latency timing per batch size per process (it stops sooner at 2,000 calls); ``threads``
    the threads of every worker (None: every usable core); artefacts are written under ``out``.
    """

    kind: ClassVar[str] = "deploy"

    workloads: tuple[str, ...] = BUILTIN
    size: str = "small"
    paths: tuple[str, ...] = tuple(PATHS)
    batch_sizes: tuple[int, ...] | None = None
    repeats: int = 3
    budget_s: float = 1.0
    threads: int | None = None
    seed: int = 0
    out: Path = Path("twinbench-results")

    def validate(self) -> None:
        """Refuse an unknown name, a batch size, count or budget that is not > 0."""
        seed(self.seed)
        one_of("workload", self.workloads, BUILTIN)
        not_empty("workload", self.workloads, BUILTIN)
        one_of("size", (self.size,), SIZE_NAMES)
        one_of("deployment path", self.paths, tuple(PATHS))
        not_empty("deployment path", self.paths, tuple(PATHS))
        for size in self.batch_sizes or ():
            positive("batch size", size, integer=True)
        if self.batch_sizes is not None and not self.batch_sizes:
            raise TwinbenchError("no batch size given; give positive integers such as 1,32")
        positive("repeats", self.repeats, integer=True)
        positive("budget", self.budget_s)
        if self.threads is not None:
            positive("threads", self.threads, integer=True)

    def check_environment(self) -> None:
        """Refuse more threads than usable cores and an ``out`` this process cannot write."""
        from twinbench.harness.environment import usable_cores

        if self.threads is not None:
            in_range("threads", self.threads, low=1, high=usable_cores(), integer=True)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TwinbenchError(
                f"--out {self.out} cannot be created ({exc.strerror}); give a writable directory"
            ) from None
        if not os.access(self.out, os.W_OK | os.X_OK):
            raise TwinbenchError(f"--out {self.out} is not writable; give a writable directory")

    def resolved(self) -> DeploySettings:
        """These settings with the thread count decided: every usable core when none was given."""
        from twinbench.harness.environment import usable_cores

        return replace(self, threads=self.threads or usable_cores())

    def batches_for(self, size_batch: int) -> tuple[int, ...]:
        """The batch sizes an artefact is called at, for a size whose own batch is
        ``size_batch``: the given ones, or 1 and ``size_batch``."""
        given = self.batch_sizes or (1, size_batch)
        return tuple(sorted(set(given)))

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the run (the report reads these keys)."""
        return {
            "workloads": list(self.workloads),
            "size": self.size,
            "paths": list(self.paths),
            "batch_sizes": None if self.batch_sizes is None else list(self.batch_sizes),
            "repeats": self.repeats,
            "budget_s": self.budget_s,
            "threads": self.threads,
            "seed": self.seed,
            "dtype": "float32",
            "device": "cpu",
            "phase": "infer",
        }
