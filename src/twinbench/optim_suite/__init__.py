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
from twinbench.optim_suite.second_order import SecondOrderResult, solve_second_order
from twinbench.optim_suite.settings import OptimSettings
from twinbench.optim_suite.suite import OptimReport, run_optim
from twinbench.optim_suite.view import first_order_rows, render_markdown, second_order_rows

__all__ = [
    "DEFAULT_DIMS",
    "FIRST_ORDER",
    "IMPLEMENTATIONS",
    "METHODS",
    "PROBLEMS",
    "QUICK_DIMS",
    "FirstOrderResult",
    "OptimReport",
    "OptimSettings",
    "Problem",
    "SecondOrderResult",
    "compare_first_order",
    "first_order_config",
    "first_order_rows",
    "make_problem",
    "render_markdown",
    "run_optim",
    "second_order_rows",
    "solve_second_order",
]
