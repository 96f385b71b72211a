"""The parallel suite behind ``twinbench parallel``: data and tensor parallelism over N devices in
both frameworks, proven equal to one device, then timed for weak and strong scaling.

Importing this package imports no framework; the workers import torch or JAX in their own
processes (`torch_parallel`, launched by ``torch.distributed.run``; `jax_parallel`).
"""

from twinbench.modes import FRAMEWORKS
from twinbench.parallel.launcher import LaunchFailed, wait_reachable
from twinbench.parallel.plan import (
    SCALINGS,
    STRATEGIES,
    Cell,
    MultiNode,
    ParallelSettings,
    cells,
    tp_plan,
)
from twinbench.parallel.result import CellResult, ParallelReport
from twinbench.parallel.scaling import scaling_rows
from twinbench.parallel.suite import run_parallel_suite
from twinbench.parallel.view import render_markdown

__all__ = [
    "FRAMEWORKS",
    "SCALINGS",
    "STRATEGIES",
    "Cell",
    "CellResult",
    "LaunchFailed",
    "MultiNode",
    "ParallelReport",
    "ParallelSettings",
    "cells",
    "render_markdown",
    "run_parallel_suite",
    "scaling_rows",
    "tp_plan",
    "wait_reachable",
]
