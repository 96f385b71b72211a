"""First-order optimizers: the two twins' loss trajectories over N steps, compared step by step.

Both twins load the one canonical init (`twinbench.backends.initial_weights`) and see the same
batches; each trains through its parity runner (`train_curve`), which maps `OptimizerConfig` onto
torch.optim and optax. Every hyper-parameter is set here explicitly, none is left to a library
default (the defaults differ: AdamW's weight decay is 1e-2 in torch and 1e-4 in optax).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any, Literal

import numpy as np

from twinbench.backends import initial_weights, make_runner
from twinbench.errors import TwinbenchError
from twinbench.parity import TOLERANCES, compare_curves
from twinbench.registry import EXAMPLES, builtin
from twinbench.spec import OptimizerConfig
from twinbench.validation import one_of

FIRST_ORDER = ("sgd", "sgd_momentum", "adam", "adamw")

# Learning rates per built-in workload: (SGD family, Adam family), the workloads' own choices.
LEARNING_RATES = {"linreg": (0.02, 0.05), "mlp": (0.05, 1e-3), "xor": (0.5, 0.05)}
MOMENTUM = 0.9
BETAS = (0.9, 0.999)
EPS = 1e-8
ADAMW_WEIGHT_DECAY = 0.1  # large enough that decoupled vs L2 decay shows within a few steps


@dataclass
class FirstOrderResult:
    """One (workload, optimizer) trajectory comparison. ``status``: agree, disagree, diverged
    (NaN/Inf in either curve: no differences are reported) or error."""

    workload: str
    size: str
    optimizer: str
    config: dict[str, Any]
    steps: int
    status: str
    max_abs: float | None = None
    max_rel: float | None = None
    first_bad_step: int | None = None
    atol: float = 0.0  # the tolerance at step 0; step k allows (1 + k) times it
    rtol: float = 0.0
    torch_final: float | None = None
    jax_final: float | None = None
    error: str | None = None


def validate_first_order(workload: str, optimizer: str) -> None:
    """One-line TwinbenchError for an unknown workload or optimizer name."""
    one_of("workload", [workload], EXAMPLES)
    one_of("optimizer", [optimizer], FIRST_ORDER)


def first_order_config(workload: str, optimizer: str, lr: float | None = None) -> OptimizerConfig:
    """The fully explicit `OptimizerConfig` the suite uses for ``optimizer`` on ``workload``."""
    validate_first_order(workload, optimizer)
    sgd_lr, adam_lr = LEARNING_RATES[workload]
    if optimizer in ("sgd", "sgd_momentum"):
        momentum = MOMENTUM if optimizer == "sgd_momentum" else 0.0
        return OptimizerConfig("sgd", lr=lr or sgd_lr, momentum=momentum, weight_decay=0.0)
    decay = ADAMW_WEIGHT_DECAY if optimizer == "adamw" else 0.0
    name: Literal["adam", "adamw"] = "adamw" if optimizer == "adamw" else "adam"
    return OptimizerConfig(name, lr=lr or adam_lr, betas=BETAS, eps=EPS, weight_decay=decay)


def compare_first_order(
    workload: str,
    optimizer: str,
    *,
    size: str = "tiny",
    steps: int = 200,
    seed: int = 0,
    lr: float | None = None,
) -> FirstOrderResult:
    """Train both twins of ``workload`` for ``steps`` steps with ``optimizer`` and compare."""
    config = first_order_config(workload, optimizer, lr)
    spec = builtin(workload)
    preset = spec.size(size)
    tol = TOLERANCES["float32"].curve
    result = FirstOrderResult(
        workload, size, optimizer, asdict(config), steps, "error", atol=tol.atol, rtol=tol.rtol
    )
    try:
        weights = initial_weights(spec, preset, seed)
        batches = list(islice(spec.batches(preset, seed), steps))
        curves = []
        for framework in ("torch", "jax"):
            runner = make_runner(framework, spec, preset)
            runner.load(weights)
            curves.append(runner.train_curve(batches, config))
    except TwinbenchError:
        raise
    except Exception as exc:  # one failing twin is recorded; the suite goes on
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    torch_curve, jax_curve = curves
    result.torch_final, result.jax_final = torch_curve[-1], jax_curve[-1]
    if not (np.isfinite(torch_curve).all() and np.isfinite(jax_curve).all()):
        result.status = "diverged"
        return result
    check = compare_curves(f"curve[{optimizer}]", torch_curve, jax_curve, tol)
    result.status = "agree" if check.passed else "disagree"
    result.max_abs, result.max_rel = check.max_abs, check.max_rel
    result.first_bad_step = check.first_bad_step
    return result
