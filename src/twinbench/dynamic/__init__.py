"""The dynamic suite: changing shapes, recompiles, graph breaks and data-dependent control flow.

``settings`` says what a run measures and its strategies, ``schedule`` the seeded lengths,
buckets and masked padding, ``torch_side`` / ``jax_side`` each framework's training step in its
own idiom, ``counters`` how compilations are counted, ``features`` with ``torch_checks`` /
``jax_checks`` and ``planted`` the control-flow and debugging table, ``suite`` the run,
``worker`` a strategy's process and ``view`` the report's rendering. Importing this package
imports neither framework.
"""

from twinbench.dynamic.settings import SCENARIOS, STRATEGY_NAMES, DynamicSettings
from twinbench.dynamic.suite import DynamicReport, run_dynamic
from twinbench.dynamic.view import render_markdown

__all__ = [
    "SCENARIOS",
    "STRATEGY_NAMES",
    "DynamicReport",
    "DynamicSettings",
    "render_markdown",
    "run_dynamic",
]
