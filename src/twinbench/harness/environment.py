"""The machine a run measures, and the thread budget both frameworks get. Imports no framework."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

COMPILE_CACHE_VARIABLE = (
    "TWINBENCH_COMPILE_CACHE"  # a cell's compile caches, shared by its processes
)
PACKAGES = ("torch", "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "twinbench")

# Variables each BLAS / OpenMP runtime reads for its pool size; all get the same budget.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


# glibc's malloc, fixed the same way in every worker of either framework: freed memory stays with
# the process (no trimming of the heap's top) and blocks up to 32 MiB (the most glibc allows) come
# from the heap instead of a mapping of their own. glibc's defaults adapt both thresholds to what
# the process freed before, so a step whose temporaries happen to sit at the top of the heap is
# handed back and page-faulted in again every step: the mlp small train step took ~1,000 minor
# faults a step in a plain script and ~400 in a twinbench worker, whose earlier allocations were
# laid out otherwise; the step time followed the process's history, not the framework. With these
# the steady state takes no faults in either. (The memory step sets its own, see harness.memory.)
ALLOCATOR_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
}


def worker_environment(threads: int) -> dict[str, str]:
    """Environment for a worker process: `thread_environment` and the fixed allocator."""
    return {**thread_environment(threads), **ALLOCATOR_ENVIRONMENT}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_environment(threads: int) -> dict[str, str]:
    """Environment for a cell's subprocess so that every thread pool has ``threads`` threads.

    XLA's CPU client sizes its pool from the process's CPU affinity, which the worker pins to
    ``threads`` cores; one thread also turns off Eigen's multi-threading. (The often-quoted bare
    ``intra_op_parallelism_threads=N`` token is not an XLA flag: XLA stops parsing at it, so it set
    nothing and hid any flag placed after it.)
    """
    env = dict.fromkeys(_THREAD_VARIABLES, str(threads))
    xla_flags = os.environ.get("XLA_FLAGS", "")
    eigen = "true" if threads > 1 else "false"
    env["XLA_FLAGS"] = f"{xla_flags} --xla_cpu_multi_thread_eigen={eigen}".strip()
    env["TWINBENCH_THREADS"] = str(threads)
    # JAX's GPU client otherwise grabs most of the memory up front, which would make its
    # allocator peak meaningless; without a GPU this changes nothing.
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command_output(command: list[str]) -> str:
    """What a short command prints, or "" when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _gpu_names() -> list[str]:
    """GPU names from nvidia-smi, without importing a framework (names only, never memory)."""
    out = _command_output(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def _git_commit() -> str | None:
    """The commit of the twinbench source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[3]
    if not (source / ".git").exists():
        return None
    return _command_output(["git", "-C", str(source), "rev-parse", "HEAD"]).strip() or None


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the numbers."""
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def fingerprint() -> dict[str, Any]:
    """Everything about this machine and software that a run's numbers depend on."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "usable_cores": usable_cores(),
        "memory_bytes": psutil.virtual_memory().total,
        "gpus": _gpu_names(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "git_commit": _git_commit(),
        "thread_variables": {k: os.environ.get(k) for k in (*_THREAD_VARIABLES, "XLA_FLAGS")},
    }
