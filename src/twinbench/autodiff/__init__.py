"""The autodiff suite: grad, jvp, vjp, jacobians, Hessians, per-example gradients and
checkpointing in PyTorch (``torch.func``) and JAX, proven equal, then timed and measured.

``functions`` defines the problems, ``torch_side`` / ``jax_side`` each framework's idiom (same
names, side by side), ``checks`` the correctness rules and tolerances, ``suite`` the run.
Importing this package imports neither framework.
"""

from twinbench.autodiff.checks import CheckResult, Evaluation, judge
from twinbench.autodiff.functions import FUNCTIONS, TRANSFORMS, Sizes
from twinbench.autodiff.suite import (
    MODES,
    AutodiffReport,
    FeatureCell,
    feature_table,
    format_summary,
    run_suite,
    save,
)

__all__ = [
    "FUNCTIONS",
    "MODES",
    "TRANSFORMS",
    "AutodiffReport",
    "CheckResult",
    "Evaluation",
    "FeatureCell",
    "Sizes",
    "feature_table",
    "format_summary",
    "judge",
    "run_suite",
    "save",
]
