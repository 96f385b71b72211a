"""N devices against one: the weights a parallel cell ends with, compared with the one-device run
and with the other framework's. Imports no framework.

Parity: each cell trains ``parity_steps`` steps per optimizer on N devices and, on rank 0, the
plain model on one device with the same global batches — twice: once as given, and once perturbed
at rounding level (every initial weight one ulp up or down at random, each batch's samples in
reverse order: the same training in exact arithmetic). N devices change nothing else either: the
order of sums, the matmul kernels' blocking. The two one-device runs give the *rounding floor*:
how far one device drifts from itself after K steps. SGD's floor is ~1e-8. Adam's is far larger:
Adam divides each gradient by its own size plus eps (1e-8), so an element whose gradient is
within a few eps of zero (or exactly zero in exact arithmetic, like GPT's attention key bias,
which softmax ignores) moves by up to ±lr per step in whichever direction its rounding points,
ReLU units then switch on or off, and the later gradients follow. A tensor of the N-device
weights passes when every element is within the float32 tolerance (`twinbench.parity.TOLERANCES`,
gradients) of the one-device weights, or within ``FLOOR_FACTOR`` × the rounding floor. The floor
is the model's, not each tensor's: rounding-level drift spreads through every weight within a
step or two, and one perturbed run estimates a single tensor's share of it too noisily.
Where both frameworks ran the same strategy, N and batch, their N-device weights are compared
with each other the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PARITY_TOLERANCE = "gradients"  # which of twinbench.parity.TOLERANCES["float32"] applies
# N devices may drift from one device at most this many times as far as one device drifts from
# itself when perturbed at rounding level. Both drifts are single samples of a random process
# (the floor from one perturbation), so their ratio scatters: with 2, one of 24 Adam checks on
# mlp small ended at 2.15×. A missing all-reduce ends above 100× (see the tests).
FLOOR_FACTOR = 3.0

Weights = dict[str, np.ndarray]  # canonical name -> float32 array


def rounding_floor(single: Weights, perturbed: Weights) -> float:
    """The largest difference between the one-device run and the same run perturbed at
    rounding level (see the module docstring)."""
    return max(float(np.abs(single[key] - perturbed[key]).max()) for key in single)


def compare_weights(
    name: str, reference: Weights, other: Weights, floor: float = 0.0
) -> dict[str, Any]:
    """Every tensor compared at the float32 tolerance, its atol raised to ``FLOOR_FACTOR`` ×
    the rounding floor where that is larger; the row keeps the worst tensor."""
    from twinbench.parity import TOLERANCES, Tolerance, compare

    tol = getattr(TOLERANCES["float32"], PARITY_TOLERANCE)
    row: dict[str, Any] = {"check": name, "atol": tol.atol, "rtol": tol.rtol, "floor": floor}
    if set(reference) != set(other):
        missing = ", ".join(sorted(set(reference) ^ set(other)))
        return {**row, "passed": False, "max_abs": None, "max_rel": None,
                "detail": f"tensors differ: {missing}"}  # fmt: skip
    allowed = Tolerance(max(tol.atol, FLOOR_FACTOR * floor), tol.rtol)
    checks = {key: compare(key, reference[key], other[key], allowed) for key in reference}
    failed = [k for k, c in checks.items() if not c.passed]
    worst = max(checks, key=lambda k: checks[k].max_abs)
    return {
        **row,
        "passed": not failed,
        "max_abs": checks[worst].max_abs,
        "max_rel": max(c.max_rel for c in checks.values()),
        "worst": worst,
        "detail": "; ".join(f"{k}: {checks[k].detail}" for k in failed[:3]),
    }


def cross_framework_rows(
    key: tuple[str, int, int, str], found: Sequence[tuple[str, str, Weights, float]]
) -> list[dict[str, Any]]:
    """Each JAX run's N-device weights against each torch run's of the same ``key`` (strategy,
    N, global batch, optimizer); ``found`` holds (framework, implementation, weights, floor)."""
    strategy, n, batch, optimizer = key
    rows = []
    for _, jax_impl, weights, jax_floor in (f for f in found if f[0] == "jax"):
        for _, torch_impl, reference, torch_floor in (f for f in found if f[0] == "torch"):
            row = compare_weights("torch vs jax", reference, weights, max(torch_floor, jax_floor))
            row.update(strategy=strategy, devices=n, global_batch=batch, optimizer=optimizer,
                       torch=torch_impl, jax=jax_impl)  # fmt: skip
            rows.append(row)
    return rows
