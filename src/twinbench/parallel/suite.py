"""The parallel suite: check the settings, launch every cell, compare its weights, gather the
report. Imports no framework (the workers do).

`twinbench.parallel.parity` judges N devices against one, `twinbench.parallel.scaling` derives
the scaling table, `twinbench.parallel.view` renders what was found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twinbench.errors import TwinbenchError
from twinbench.parallel import launcher, plan
from twinbench.parallel.parity import Weights, compare_weights, cross_framework_rows, rounding_floor
from twinbench.parallel.plan import Cell, ParallelSettings
from twinbench.parallel.result import CellResult, ParallelReport
from twinbench.parallel.scaling import summarised_timing
from twinbench.suite import Progress, no_progress


def _probe(settings: ParallelSettings) -> tuple[dict[str, tuple[int, ...]], int]:
    """Canonical shapes and the size preset's batch size (imports one framework for shapes)."""
    from twinbench.backends import canonical_shapes
    from twinbench.registry import builtin, from_file

    workload = (
        from_file(settings.workload_file) if settings.workload_file else builtin(settings.workload)
    )
    size = workload.size(settings.size)
    return canonical_shapes(workload, size), size.batch_size


def _load(out_dir: Path, name: str) -> Weights:
    with np.load(out_dir / name) as data:
        return {key: data[key] for key in data.files}


def run_cell(
    settings: ParallelSettings, cell: Cell
) -> tuple[CellResult, dict[str, tuple[Weights, float]]]:
    """Launch one cell; its result and, per parity optimizer, its N-device weights with the
    rounding floor `compare_weights` takes."""
    result = CellResult(
        cell.framework, cell.impl, cell.strategy, cell.devices, cell.global_batch,
        list(cell.scalings),
    )  # fmt: skip
    weights: dict[str, tuple[Weights, float]] = {}
    with launcher.cell_directory() as scratch:
        out_dir = Path(scratch)
        try:
            found = launcher.launch(settings, cell, plan.request(settings, cell, scratch))
        except launcher.LaunchFailed as failure:
            result.status, result.error = failure.status, failure.error
            return result, weights
        if found is None:  # multi-node: rank 0, and with it the result, lives on another node
            result.status, result.error = "skipped", "rank 0 ran on another node, which stores it"
            return result, weights
        result.processes, result.platform = found.get("processes"), found.get("platform")
        result.param_specs = found.get("param_specs", {})
        result.timing = summarised_timing(found.get("timing"))
        for optimizer, entry in found["parity"].items():
            parallel = _load(out_dir, entry["parallel"])
            single = _load(out_dir, entry["single"])
            floor = rounding_floor(single, _load(out_dir, entry["perturbed"]))
            weights[optimizer] = (parallel, floor)
            row = compare_weights(f"{cell.devices} devices vs 1", single, parallel, floor)
            row.update(optimizer=optimizer, steps=settings.parity_steps,
                       final_loss_parallel=entry["parallel_losses"][-1],
                       final_loss_single=entry["single_losses"][-1])  # fmt: skip
            result.parity.append(row)
    return result, weights


def run_parallel_suite(
    settings: ParallelSettings, *, progress: Progress = no_progress
) -> ParallelReport:
    """Check the settings, the workload and the machine, then launch every cell in turn; a
    failed cell is recorded, and the suite goes on. Raises TwinbenchError for bad input or an
    unreachable coordinator."""
    from twinbench.harness.environment import usable_cores

    settings.validate()
    settings.check_environment()
    shapes, batch_size = _probe(settings)
    settings.check_workload(shapes, batch_size)
    report = ParallelReport(
        settings=settings.to_dict(), simulated=settings.device == "cpu", cores=usable_cores()
    )
    by_key: dict[tuple[str, int, int, str], list[tuple[str, str, Weights, float]]] = {}
    for cell in plan.cells(settings, batch_size):
        progress(cell.label)
        result, weights = run_cell(settings, cell)
        report.cells.append(result)
        for optimizer, (final, floor) in weights.items():
            key = (cell.strategy, cell.devices, cell.global_batch, optimizer)
            by_key.setdefault(key, []).append((cell.framework, cell.impl, final, floor))
    for key, found in by_key.items():
        report.cross += cross_framework_rows(key, found)
    return report


def require_ok(report: ParallelReport) -> None:
    """For scripts: TwinbenchError naming the first failed cell, if any."""
    if report.failures:
        cell = report.failures[0]
        raise TwinbenchError(f"{cell.label} {cell.status}: {cell.error}")
