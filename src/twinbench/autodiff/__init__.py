"""The autodiff suite: grad, jvp, vjp, jacobians, Hessians, per-example gradients and
checkpointing in PyTorch (``torch.func``) and JAX, proven equal, then timed and measured.

``functions`` defines the problems, ``torch_side`` / ``jax_side`` each framework's idiom (same
names, side by side), ``checks`` the correctness rules and tolerances, ``settings`` what a run
measures, ``suite`` the run, ``worker`` a framework's process and ``view`` the report's rendering.
Importing this package imports neither framework.
"""

from twinbench.autodiff.checks import CheckResult, Evaluation, judge
from twinbench.autodiff.functions import FUNCTIONS, TRANSFORMS, Sizes
from twinbench.autodiff.settings import MODES, AutodiffSettings
from twinbench.autodiff.suite import AutodiffReport, FeatureCell, feature_table, run_autodiff
from twinbench.autodiff.view import render_markdown

__all__ = [
    "FUNCTIONS",
    "MODES",
    "TRANSFORMS",
    "AutodiffReport",
    "AutodiffSettings",
    "CheckResult",
    "Evaluation",
    "FeatureCell",
    "Sizes",
    "feature_table",
    "judge",
    "render_markdown",
    "run_autodiff",
]
