"""The largest batch that fits a memory budget: fitted on a sweep, then measured to confirm.

A sweep's attributable peaks (one per batch size and mode) are close to linear in the batch:
a fixed part (parameters, gradients, optimizer state) plus bytes per sample (activations and
the batch itself). `MemoryFit` is that line, least squares; `largest_batch` inverts it.
``twinbench sweep --memory-budget 8GiB`` then measures each mode at its predicted batch, so the
prediction is checked against a real step (on a GPU, an allocation that fails is that cell's
recorded error, and the run goes on). A sweep over sequence lengths (``--seq-lens``) gets the
same line against the sequence length at each batch size, `SequenceFit`, stored as the run's
``memory_sequence_fits`` info; with ``--memory-budget`` its `longest_sequence` is measured the
same way (clipped to the workload's position table, ``max_positions``, and marked so), stored
as the run's ``memory_sequence_budget`` info. Imports no framework.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twinbench.errors import TwinbenchError
from twinbench.spec import check_size

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
POSITION_TABLE = "max_positions"  # the config key of a sequence workload's longest length


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


def _line(points: dict[int, float]) -> tuple[float, float, tuple[int, ...]] | None:
    """Least-squares slope and intercept of ``points`` (x → bytes); None under two points."""
    if len(points) < 2:
        return None
    xs = sorted(points)
    slope, intercept = np.polyfit(xs, [points[x] for x in xs], 1)
    return float(slope), float(intercept), tuple(xs)


def _largest_within(budget_bytes: int, slope: float, intercept: float) -> int | None:
    """The largest x ≥ 1 with ``intercept + slope × x`` within the budget; None when the line
    does not grow (under a byte a step: rounding, not growth) or x = 1 is already over."""
    if slope < 1:
        return None
    x = math.floor((budget_bytes - intercept) / slope)
    return x if x >= 1 else None


@dataclass(frozen=True)
class MemoryFit:
    """Attributable peak ≈ ``intercept_bytes`` + ``bytes_per_sample`` × batch, least squares."""

    bytes_per_sample: float
    intercept_bytes: float
    batch_sizes: tuple[int, ...]

    @classmethod
    def of(cls, points: dict[int, float]) -> MemoryFit | None:
        """The line through (batch size, attributable bytes); None under two batch sizes."""
        line = _line(points)
        return None if line is None else cls(*line)

    def largest_batch(self, budget_bytes: int) -> int | None:
        """The largest batch whose predicted peak stays within the budget; None when memory
        does not grow with the batch or even one sample does not fit."""
        return _largest_within(budget_bytes, self.bytes_per_sample, self.intercept_bytes)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


SWEEP_FIELDS = ("workload", "size", "seq_len", "checkpointing", "phase", "mode")
SweepKey = tuple[str, str, int | None, bool, str, str]  # as SWEEP_FIELDS name them


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


@dataclass(frozen=True)
class SequenceFit:
    """Attributable peak ≈ ``intercept_bytes`` + ``bytes_per_position`` × sequence length, at
    one batch size, least squares. A position's bytes cover every sample of the batch, so
    ``bytes_per_token`` is that over the batch size. Attention that keeps its T × T scores
    grows faster than a line: there the slope depends on the lengths swept."""

    bytes_per_position: float
    intercept_bytes: float
    seq_lens: tuple[int, ...]
    batch_size: int

    @classmethod
    def of(cls, points: dict[int, float], *, batch_size: int) -> SequenceFit | None:
        """The line through (sequence length, attributable bytes); None under two lengths."""
        line = _line(points)
        return None if line is None else cls(*line, batch_size=batch_size)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes_per_position / self.batch_size

    def longest_sequence(self, budget_bytes: int) -> int | None:
        """The longest sequence whose predicted peak stays within the budget; None when memory
        does not grow with the length or even one position does not fit."""
        return _largest_within(budget_bytes, self.bytes_per_position, self.intercept_bytes)

    def as_record(self) -> dict[str, Any]:
        return asdict(self) | {"bytes_per_token": self.bytes_per_token}


SEQUENCE_FIELDS = ("workload", "size", "batch_size", "checkpointing", "phase", "mode")
SequenceKey = tuple[str, str, int, bool, str, str]  # as SEQUENCE_FIELDS name them


def sequence_fits(
    measured: dict[str, tuple[Any, dict[str, Any]]],
) -> dict[SequenceKey, SequenceFit]:
    """A fit against the sequence length per (workload, size, batch size, checkpointing, phase,
    mode) of a session's measured cells: those of a sweep over two or more lengths."""
    points: dict[SequenceKey, dict[int, float]] = {}
    for cell, metrics in measured.values():
        peak = metrics.get("attributable_peak_bytes")
        point = cell.point
        if peak is None or point.seq_len is None:
            continue
        batch_size = point.size.batch_size  # the preset's, where the sweep keeps it
        key: SequenceKey = (
            point.workload.name,
            point.size_name,
            batch_size,
            point.checkpointing,
            cell.phase,
            cell.mode,
        )
        points.setdefault(key, {})[point.seq_len] = float(peak)
    fits = {key: SequenceFit.of(p, batch_size=key[2]) for key, p in points.items()}
    return {key: fit for key, fit in fits.items() if fit is not None}


def record_sequence_fits(session: RunSession) -> None:
    """Store the session's fits against the sequence length as the run's
    ``memory_sequence_fits`` info; nothing when it swept fewer than two lengths."""
    fits = [
        dict(zip(SEQUENCE_FIELDS, key, strict=True)) | fit.as_record()
        for key, fit in sequence_fits(session.measured).items()
    ]
    if fits:
        session.recorder.set_run_info(session.run_id, "memory_sequence_fits", fits)


def confirm_memory_budget(session: RunSession, progress: Progress) -> None:
    """What ``--memory-budget`` asks of a sweep: over two or more batch sizes, each mode's
    largest batch (`confirm_batch_budget`); over two or more sequence lengths, its longest
    sequence (`confirm_sequence_budget`); each predicted, then measured."""
    settings = session.settings
    if len(set(settings.batch_sizes)) >= 2:
        confirm_batch_budget(session, progress)
    if len(set(settings.seq_lens)) >= 2:
        confirm_sequence_budget(session, progress)


def _unmeasured(predicted: int | None, swept: tuple[int, ...], grows: str, most: str) -> str | None:
    """Why a prediction is not measured (none, or too far past what was swept), or None."""
    if predicted is None:
        return f"no prediction: memory does not grow with the {grows} here"
    if predicted > MAX_EXTRAPOLATION * max(swept):
        return f"not measured: more than {MAX_EXTRAPOLATION}× the {most} swept"
    return None


def _confirm(session: RunSession, cell: Any, progress: Progress) -> dict[str, Any]:
    """Measure the cell a prediction names; its size as stored and what it showed."""
    _measure_one(session, cell, progress)
    budget = session.settings.memory_budget
    assert budget is not None
    return {"cell_size": cell.point.label} | _outcome(session, cell, budget)


def _measure_one(session: RunSession, cell: Any, progress: Progress) -> None:
    """Measure ``cell`` unless the sweep already has (a point it swept is not re-run)."""
    import tempfile
    from pathlib import Path

    from twinbench.harness.cells import measure_cells

    if cell.label in session.measured or cell.label in session.failures:
        return
    # a cell the run did not plan at its start: the progress display counts it from now on
    progress("cell-added", {"cell": cell.label, "processes": session.settings.repeats})
    with tempfile.TemporaryDirectory(prefix="twinbench-compile-caches-") as caches:
        measure_cells(session, [[cell]], progress, Path(caches))


def confirm_batch_budget(session: RunSession, progress: Progress) -> None:
    """Predict each swept mode's largest batch under the budget, measure it there, and store
    prediction and outcome as the run's ``memory_budget`` info."""
    from twinbench.harness.runner import Cell, Point

    budget = session.settings.memory_budget
    assert budget is not None
    entries = []
    files = {c.workload.name: c.point.workload_file for c, _ in session.measured.values()}
    workloads = {c.workload.name: c.workload for c, _ in session.measured.values()}
    for key, fit in sweep_fits(session.measured).items():
        workload, size, seq_len, checkpointing, phase, mode = key
        entry: dict[str, Any] = dict(zip(SWEEP_FIELDS, key, strict=True)) | fit.as_record()
        entry["predicted_batch"] = fit.largest_batch(budget)
        predicted = entry["predicted_batch"]
        unmeasured = _unmeasured(predicted, fit.batch_sizes, "batch", "largest batch")
        if unmeasured is not None:
            entry["outcome"] = unmeasured
        else:
            file = files[workload]
            point = Point(workloads[workload], file, size, predicted, seq_len, checkpointing)
            entry.update(_confirm(session, Cell(point, mode, phase), progress))
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


def confirm_sequence_budget(session: RunSession, progress: Progress) -> None:
    """Predict each swept mode's longest sequence under the budget from its fit against the
    sequence length, measure it there, and store prediction and outcome as the run's
    ``memory_sequence_budget`` info.

    A prediction past the workload's position table (``max_positions``) is measured at the
    table's length instead, with ``clipped`` set: a longer sequence has no position to embed.
    """
    from twinbench.harness.runner import Cell, Point

    budget = session.settings.memory_budget
    assert budget is not None
    entries = []
    points = {c.workload.name: c.point for c, _ in session.measured.values()}
    swept_batch = bool(session.settings.batch_sizes)
    for key, fit in sequence_fits(session.measured).items():
        workload, size, batch_size, checkpointing, phase, mode = key
        swept = points[workload]
        limit = swept.workload.size(size).config.get(POSITION_TABLE)
        predicted = fit.longest_sequence(budget)
        clipped = predicted is not None and limit is not None and predicted > limit
        length = limit if clipped else predicted
        entry: dict[str, Any] = dict(zip(SEQUENCE_FIELDS, key, strict=True)) | fit.as_record()
        entry |= {
            "predicted_seq_len": predicted,
            "position_limit": limit,
            "clipped": clipped,
            "measured_seq_len": None,
        }
        unmeasured = _unmeasured(length, fit.seq_lens, "sequence length", "longest sequence")
        if unmeasured is not None:
            entry["outcome"] = unmeasured
        else:
            point = Point(
                swept.workload,
                swept.workload_file,
                size,
                batch_size if swept_batch else None,  # else the preset's, as the sweep kept it
                length,
                checkpointing,
            )
            try:
                check_size(swept.workload, point.size)  # e.g. shorter than the task needs
            except TwinbenchError as error:
                entry["outcome"] = f"not measured: {error}"
            else:
                entry["measured_seq_len"] = length
                entry.update(_confirm(session, Cell(point, mode, phase), progress))
        entries.append(entry)
    session.recorder.set_run_info(
        session.run_id, "memory_sequence_budget", {"budget_bytes": budget, "fits": entries}
    )
