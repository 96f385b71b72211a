"""Fidelity: does the shipped artefact still compute what the eager twin computes?

An artefact's outputs are compared, batch size by batch size, with its own framework's eager
twin on the same canonical weights and batch, and with the other framework's artefact on the same
runtime family, by the parity rule (`twinbench.parity.compare`: ``|a - b| <= atol + rtol·|b|``)
at the workload's float32 output tolerance. Imports no framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from twinbench.parity import Tolerance, compare


def compare_outputs(
    reference: Mapping[int, np.ndarray], other: Mapping[int, np.ndarray], tol: Tolerance
) -> dict[str, dict[str, Any]]:
    """One parity check per batch size ``other`` has; a batch the reference lacks fails."""
    checks = {}
    for b, out in sorted(other.items()):
        if b not in reference:
            checks[str(b)] = {"passed": False, "detail": f"no reference at batch {b}"}
            continue
        check = compare(f"batch {b}", reference[b], out, tol)
        checks[str(b)] = {k: v for k, v in asdict(check).items() if k not in ("curves",)}
    return checks


def all_passed(checks: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when there is at least one check and every one passed."""
    return bool(checks) and all(c["passed"] for c in checks.values())
