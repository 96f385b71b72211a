"""The optimizer suite behind ``twinbench optim``: SGD, momentum, Adam and AdamW trajectories
compared step by step between the twins, and Newton, BFGS and L-BFGS solves of classic problems
in float64 in both frameworks.

Importing this package imports no framework; torch and JAX are imported when a suite runs.
"""

from twinbench.optim_suite.first_order import (
    FIRST_ORDER,
    FirstOrderResult,
    compare_first_order,
    first_order_config,
)
from twinbench.optim_suite.methods import IMPLEMENTATIONS, METHODS
from twinbench.optim_suite.problems import DEFAULT_DIMS, PROBLEMS, QUICK_DIMS, Problem, make_problem
from twinbench.optim_suite.suite import (
    OptimReport,
    SecondOrderResult,
    first_order_rows,
    render_markdown,
    run_optim_suite,
    save,
    second_order_rows,
    solve_second_order,
)

__all__ = [
    "DEFAULT_DIMS",
    "FIRST_ORDER",
    "IMPLEMENTATIONS",
    "METHODS",
    "PROBLEMS",
    "QUICK_DIMS",
    "FirstOrderResult",
    "OptimReport",
    "Problem",
    "SecondOrderResult",
    "compare_first_order",
    "first_order_config",
    "first_order_rows",
    "make_problem",
    "render_markdown",
    "run_optim_suite",
    "save",
    "second_order_rows",
    "solve_second_order",
]
