"""The parallel suite: launch every cell, check parity across devices, derive the scaling table.
Imports no framework (the workers do); `twinbench.parallel.view` renders what it finds.

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

Timing: each rank times fixed blocks of steps (`twinbench.parallel.common.time_steps`, through
`twinbench.harness.timing`); a cell's step time is the median of the blocks' per-step seconds with
its bootstrap CI (`twinbench.harness.stats.summarize`), as everywhere in twinbench.

Scaling: throughput is global batch / median step time; efficiency is throughput at N over N times
the throughput at N = 1 of the same implementation — for strong scaling (fixed global batch) that
is speed-up / N, for weak scaling (fixed per-device batch) it is t(1) / t(N). The communication
share of data parallelism is 1 − t(step without the gradient all-reduce) / t(step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from twinbench.errors import TwinbenchError
from twinbench.parallel import launcher, plan
from twinbench.parallel.plan import Cell, ParallelSettings
from twinbench.store import json_ready
from twinbench.suite import Progress, no_progress

PARITY_TOLERANCE = "gradients"  # which of twinbench.parity.TOLERANCES["float32"] applies
# N devices may drift from one device at most this many times as far as one device drifts from
# itself when perturbed at rounding level. Both drifts are single samples of a random process
# (the floor from one perturbation), so their ratio scatters: with 2, one of 24 Adam checks on
# mlp small ended at 2.15×. A missing all-reduce ends above 100× (see the tests).
FLOOR_FACTOR = 3.0


@dataclass
class CellResult:
    """One launch: what it was, how it ended, its parity checks and its timing."""

    framework: str
    impl: str
    strategy: str
    devices: int
    global_batch: int
    scalings: list[str]
    status: str = "ok"
    error: str | None = None
    processes: int | None = None
    platform: str | None = None
    param_specs: dict[str, str] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.framework}/{self.impl} {self.strategy} N={self.devices}"


@dataclass
class ParallelReport:
    """Everything one ``twinbench parallel`` found: a `twinbench.suite.SuiteResult`."""

    kind: ClassVar[str] = "parallel"

    settings: dict[str, Any]
    simulated: bool
    cores: int
    cells: list[CellResult] = field(default_factory=list)
    cross: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The flat settings stored with the run (the nested multi-node ones and the tests'
        fault hook stay in `to_dict`)."""
        flat = {k: v for k, v in self.settings.items() if not isinstance(v, dict) and k != "fault"}
        return dict(json_ready(flat))

    @property
    def failures(self) -> list[CellResult]:
        """The cells that ended without a result (a cell run on another node is not one)."""
        return [c for c in self.cells if c.status not in ("ok", "skipped")]

    @property
    def parity_passed(self) -> bool:
        """N devices against one, in each framework (the cross-framework rows only inform:
        judging the twins is ``twinbench parity``'s job)."""
        return all(p["passed"] for c in self.cells for p in c.parity)

    @property
    def failed(self) -> bool:
        """True when a cell failed or N devices did not match one device."""
        return bool(self.failures) or not self.parity_passed

    def scaling(self) -> list[dict[str, Any]]:
        """The scaling table's rows (see `scaling_rows`)."""
        return scaling_rows(self.cells)

    def to_dict(self) -> dict[str, Any]:
        """Settings, cells, cross-framework checks and scaling rows, JSON-ready."""
        data = {
            "settings": self.settings,
            "simulated": self.simulated,
            "cores": self.cores,
            "cells": [asdict(c) for c in self.cells],
            "cross": self.cross,
            "scaling": self.scaling(),
        }
        return dict(json_ready(data))


def _probe(settings: ParallelSettings) -> tuple[dict[str, tuple[int, ...]], int]:
    """Canonical shapes and the size preset's batch size (imports one framework for shapes)."""
    from twinbench.backends import canonical_shapes
    from twinbench.registry import builtin, from_file

    workload = (
        from_file(settings.workload_file) if settings.workload_file else builtin(settings.workload)
    )
    size = workload.size(settings.size)
    return canonical_shapes(workload, size), size.batch_size


def summarised(samples: list[float]) -> dict[str, Any]:
    """Per-step seconds summarised as everywhere in twinbench: median, IQR and the median's
    bootstrap CI (`twinbench.harness.stats.summarize`), with the samples."""
    from twinbench.harness.stats import summarize

    summary = summarize(samples)
    return {
        "median_s": summary.median,
        "iqr_s": summary.iqr,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        "samples": samples,
    }


def _summarised_timing(timing: dict[str, Any] | None) -> dict[str, Any] | None:
    """A worker's timing with each variant's samples (``step``, ``no_comm``) summarised."""
    if not timing:
        return timing
    return {
        key: summarised(value["samples"]) if isinstance(value, dict) else value
        for key, value in timing.items()
    }


def rounding_floor(single: dict[str, np.ndarray], perturbed: dict[str, np.ndarray]) -> float:
    """The largest difference between the one-device run and the same run perturbed at
    rounding level (see the module docstring)."""
    return max(float(np.abs(single[key] - perturbed[key]).max()) for key in single)


def compare_weights(
    name: str, reference: dict[str, np.ndarray], other: dict[str, np.ndarray], floor: float = 0.0
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


def _load(out_dir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(out_dir / name) as data:
        return {key: data[key] for key in data.files}


def run_cell(settings: ParallelSettings, cell: Cell) -> tuple[CellResult, dict[str, Any]]:
    """Launch one cell; its result and, per parity optimizer, its N-device weights with the
    rounding floor `compare_weights` takes."""
    result = CellResult(
        cell.framework, cell.impl, cell.strategy, cell.devices, cell.global_batch,
        list(cell.scalings),
    )  # fmt: skip
    weights: dict[str, Any] = {}
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
        result.timing = _summarised_timing(found.get("timing"))
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
    shapes, batch_size = _probe(settings)
    settings.check_workload(shapes, batch_size)
    settings.check_environment()
    report = ParallelReport(
        settings=settings.to_dict(), simulated=settings.device == "cpu", cores=usable_cores()
    )
    by_key: dict[tuple[str, int, int, str], list[tuple[CellResult, Any]]] = {}
    for cell in plan.cells(settings, batch_size):
        progress(cell.label)
        result, weights = run_cell(settings, cell)
        report.cells.append(result)
        for optimizer, w in weights.items():
            key = (cell.strategy, cell.devices, cell.global_batch, optimizer)
            by_key.setdefault(key, []).append((result, w))
    for (strategy, n, batch, optimizer), found in by_key.items():
        torch_runs = [(r, w) for r, w in found if r.framework == "torch"]
        for result, (w, jax_floor) in (p for p in found if p[0].framework == "jax"):
            for reference, (rw, torch_floor) in torch_runs:
                row = compare_weights("torch vs jax", rw, w, max(torch_floor, jax_floor))
                row.update(strategy=strategy, devices=n, global_batch=batch, optimizer=optimizer,
                           torch=reference.impl, jax=result.impl)  # fmt: skip
                report.cross.append(row)
    return report


def scaling_rows(cells: list[CellResult]) -> list[dict[str, Any]]:
    """One row per (implementation, strategy, scaling, N) that was timed."""
    rows = []
    for cell in cells:
        if cell.status != "ok" or not cell.timing:
            continue
        for scaling in cell.scalings:
            base = next(
                (
                    c for c in cells
                    if (c.framework, c.impl, c.strategy, c.devices) ==
                    (cell.framework, cell.impl, cell.strategy, 1)
                    and scaling in c.scalings and c.status == "ok" and c.timing
                ),
                None,
            )  # fmt: skip
            step = cell.timing["step"]["median_s"]
            throughput = cell.global_batch / step
            row: dict[str, Any] = {
                "framework": cell.framework, "impl": cell.impl, "strategy": cell.strategy,
                "scaling": scaling, "devices": cell.devices, "global_batch": cell.global_batch,
                "per_device_batch": cell.global_batch // cell.devices
                if cell.strategy == "dp" else cell.global_batch,
                "step_s": step, "iqr_s": cell.timing["step"]["iqr_s"],
                "step_ci_low_s": cell.timing["step"]["ci_low_s"],
                "step_ci_high_s": cell.timing["step"]["ci_high_s"],
                "first_step_s": cell.timing.get("step_first_s"),
                "throughput": throughput, "speedup": None, "efficiency": None,
                "comm_share": None,
            }  # fmt: skip
            if base is not None:
                base_step = base.timing["step"]["median_s"]  # type: ignore[index]
                base_throughput = base.global_batch / base_step
                row["efficiency"] = throughput / (cell.devices * base_throughput)
                row["speedup"] = base_step / step if scaling == "strong" else None
            no_comm = cell.timing.get("no_comm")
            if no_comm and cell.devices > 1:
                row["comm_share"] = max(0.0, 1.0 - no_comm["median_s"] / step)
            rows.append(row)
    rows.sort(key=lambda r: (r["strategy"], r["scaling"], r["framework"], r["impl"], r["devices"]))
    return rows


def require_ok(report: ParallelReport) -> None:
    """For scripts: TwinbenchError naming the first failed cell, if any."""
    if report.failures:
        cell = report.failures[0]
        raise TwinbenchError(f"{cell.label} {cell.status}: {cell.error}")
