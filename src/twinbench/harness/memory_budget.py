"""The largest batch that fits a memory budget: fitted on a sweep, then measured to confirm.

A sweep's attributable peaks (one per batch size and mode) are close to linear in the batch:
a fixed part (parameters, gradients, optimizer state, compiled code) plus bytes per sample
(activations and the batch itself). `MemoryFit` is that line, least squares; `largest_batch`
inverts it. ``twinbench sweep --memory-budget 8GiB`` then measures each mode at its predicted
batch, so the prediction is checked against a real step (on a GPU, an allocation that fails is
that cell's recorded error, and the run goes on). Imports no framework.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twinbench.errors import TwinbenchError

if TYPE_CHECKING:
    from twinbench.harness.runner import Progress, RunSession

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
# A prediction this many times past the largest batch measured is not worth a confirming step.
MAX_EXTRAPOLATION = 64


def parse_memory_size(flag: str, text: str) -> int:
    """Bytes from ``8GiB``, ``512MB`` or a plain byte count; one line naming it otherwise."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise TwinbenchError(
            f"{flag} {text!r} is not a size; valid: a number of bytes or a number with one of "
            "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 8GiB, 512MB)"
        )
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise TwinbenchError(f"{flag} {text!r} is invalid; valid: a size above 0 bytes")
    return size


@dataclass(frozen=True)
class MemoryFit:
    """Attributable peak ≈ ``intercept_bytes`` + ``bytes_per_sample`` × batch, least squares."""

    bytes_per_sample: float
    intercept_bytes: float
    batch_sizes: tuple[int, ...]

    @classmethod
    def of(cls, points: dict[int, float]) -> MemoryFit | None:
        """The line through (batch size, attributable bytes); None under two batch sizes."""
        if len(points) < 2:
            return None
        batches = sorted(points)
        slope, intercept = np.polyfit(batches, [points[b] for b in batches], 1)
        return cls(float(slope), float(intercept), tuple(batches))

    def largest_batch(self, budget_bytes: int) -> int | None:
        """The largest batch whose predicted peak stays within the budget; None when memory
        does not grow with the batch or even one sample does not fit."""
        if self.bytes_per_sample < 1:  # under a byte a sample: rounding, not growth
            return None
        batch = math.floor((budget_bytes - self.intercept_bytes) / self.bytes_per_sample)
        return batch if batch >= 1 else None

    def as_record(self) -> dict[str, Any]:
        return {
            "bytes_per_sample": self.bytes_per_sample,
            "intercept_bytes": self.intercept_bytes,
            "batch_sizes": list(self.batch_sizes),
        }


# workload, size, seq_len, checkpointing, phase, mode
SweepKey = tuple[str, str, int | None, bool, str, str]


def sweep_fits(measured: dict[str, tuple[Any, dict[str, Any]]]) -> dict[SweepKey, MemoryFit]:
    """A fit per (workload, size, sequence length, phase, mode) of a session's measured cells."""
    points: dict[SweepKey, dict[int, float]] = {}
    for cell, metrics in measured.values():
        peak = metrics.get("attributable_peak_bytes")
        if peak is None or cell.point.batch_size is None:
            continue
        point = cell.point
        key: SweepKey = (
            point.workload.name,
            point.size_name,
            point.seq_len,
            point.checkpointing,
            cell.phase,
            cell.mode,
        )
        points.setdefault(key, {})[cell.point.batch_size] = float(peak)
    fits = {key: MemoryFit.of(p) for key, p in points.items()}
    return {key: fit for key, fit in fits.items() if fit is not None}


def confirm_memory_budget(session: RunSession, progress: Progress) -> None:
    """Predict each swept mode's largest batch under the budget, measure it there, and store
    prediction and outcome as the run's ``memory_budget`` info."""
    import tempfile
    from pathlib import Path

    from twinbench.harness.cells import measure_cells
    from twinbench.harness.runner import Cell, Point

    budget = session.settings.memory_budget
    assert budget is not None
    entries = []
    files = {c.workload.name: c.point.workload_file for c, _ in session.measured.values()}
    workloads = {c.workload.name: c.workload for c, _ in session.measured.values()}
    with tempfile.TemporaryDirectory(prefix="twinbench-compile-caches-") as caches:
        for key, fit in sweep_fits(session.measured).items():
            workload, size, seq_len, checkpointing, phase, mode = key
            entry: dict[str, Any] = {
                "workload": workload,
                "size": size,
                "seq_len": seq_len,
                "checkpointing": checkpointing,
                "phase": phase,
                "mode": mode,
                **fit.as_record(),
                "predicted_batch": fit.largest_batch(budget),
            }
            predicted = entry["predicted_batch"]
            if predicted is None:
                entry["outcome"] = "no prediction: memory does not grow with the batch here"
            elif predicted > MAX_EXTRAPOLATION * max(fit.batch_sizes):
                entry["outcome"] = (
                    f"not measured: more than {MAX_EXTRAPOLATION}× the largest batch swept"
                )
            else:
                file = files[workload]
                point = Point(workloads[workload], file, size, predicted, seq_len, checkpointing)
                cell = Cell(point, mode, phase)
                if cell.label not in session.measured:  # a batch the sweep had is not re-run
                    measure_cells(session, [cell], progress, Path(caches))
                entry.update(_outcome(session, cell, budget))
            entries.append(entry)
    session.recorder.set_run_info(
        session.run_id, "memory_budget", {"budget_bytes": budget, "fits": entries}
    )


def _outcome(session: RunSession, cell: Any, budget: int) -> dict[str, Any]:
    """What the confirming cell measured, or how it failed (a GPU's allocation failure)."""
    if cell.label in session.failures:
        status, error = session.failures[cell.label]
        first = (error or "").strip().splitlines()
        return {"outcome": f"{status}: {first[-1][:200] if first else 'no error text'}"}
    _, metrics = session.measured[cell.label]
    peak = metrics.get("attributable_peak_bytes")
    if peak is None:
        return {"outcome": "measured, but no attributable peak"}
    return {
        "measured_bytes": peak,
        "outcome": "fits the budget" if peak <= budget else "over the budget",
    }
