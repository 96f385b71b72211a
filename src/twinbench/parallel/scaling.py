"""From timed cells to the scaling table. Imports no framework.

Timing: each rank times fixed blocks of steps (`twinbench.parallel.common.time_steps`, through
`twinbench.harness.timing`); a cell's step time is the median of the blocks' per-step seconds with
its bootstrap CI (`twinbench.harness.stats.summarize`), as everywhere in twinbench.

Scaling: throughput is global batch / median step time; efficiency is throughput at N over N times
the throughput at N = 1 of the same implementation — for strong scaling (fixed global batch) that
is speed-up / N, for weak scaling (fixed per-device batch) it is t(1) / t(N). The communication
share of data parallelism is 1 − t(step without the gradient all-reduce) / t(step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinbench.parallel.result import CellResult


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


def summarised_timing(timing: dict[str, Any] | None) -> dict[str, Any] | None:
    """A worker's timing with each variant's samples (``step``, ``no_comm``) summarised."""
    if not timing:
        return timing
    return {
        key: summarised(value["samples"]) if isinstance(value, dict) else value
        for key, value in timing.items()
    }


def scaling_rows(cells: Sequence[CellResult]) -> list[dict[str, Any]]:
    """One row per (implementation, strategy, scaling, N) that was timed."""
    rows = []
    for cell in cells:
        if cell.status != "ok" or not cell.timing:
            continue
        for scaling in cell.scalings:
            base = _one_device_run(cells, cell, scaling)
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
                base_batch, base_step = base
                base_throughput = base_batch / base_step
                row["efficiency"] = throughput / (cell.devices * base_throughput)
                row["speedup"] = base_step / step if scaling == "strong" else None
            no_comm = cell.timing.get("no_comm")
            if no_comm and cell.devices > 1:
                row["comm_share"] = max(0.0, 1.0 - no_comm["median_s"] / step)
            rows.append(row)
    rows.sort(key=lambda r: (r["strategy"], r["scaling"], r["framework"], r["impl"], r["devices"]))
    return rows


def _one_device_run(
    cells: Sequence[CellResult], cell: CellResult, scaling: str
) -> tuple[int, float] | None:
    """(global batch, median step seconds) of ``cell``'s implementation on one device in the
    ``scaling`` series, if it was timed."""
    for c in cells:
        same = (c.framework, c.impl, c.strategy) == (cell.framework, cell.impl, cell.strategy)
        if same and c.devices == 1 and scaling in c.scalings and c.status == "ok" and c.timing:
            return c.global_batch, float(c.timing["step"]["median_s"])
    return None
