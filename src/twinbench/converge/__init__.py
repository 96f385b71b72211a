"""The converge suite: MLPerf-style time to a quality target on real data that ships inside
packages, in PyTorch and JAX, several seeds per mode, parity-checked.

``datasets`` loads and splits the data offline, ``tasks`` pairs each dataset with a zoo twin, a
metric and a target, ``settings`` says what a run measures, ``worker`` trains one seed in a
fresh process (``torch_side`` / ``jax_side`` each framework's training loop), ``scoring`` is
MLPerf's drop-the-extremes median, ``suite`` the run and ``view`` the report's rendering.
Importing this package imports neither framework.
"""

from twinbench.converge.scoring import Score, kept_times, score
from twinbench.converge.settings import ConvergeSettings
from twinbench.converge.suite import ConvergeReport, run_converge
from twinbench.converge.tasks import TASKS, Task
from twinbench.converge.view import render_markdown

__all__ = [
    "TASKS",
    "ConvergeReport",
    "ConvergeSettings",
    "Score",
    "Task",
    "kept_times",
    "render_markdown",
    "run_converge",
    "score",
]
