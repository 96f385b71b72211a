"""Cells measured in several worker processes: set-up, interleaved timing rounds, metrics.

`measure_cells` is what `RunSession.measure_group` runs over all of a run's groups (the cells
of one point and phase): pass r sets up process r of each group's cells, group after group, and
times them in interleaved rounds; pass r + 1 starts when pass r has gone through every group. A
cell's processes are thus as far apart as the run is long, and their spread covers a drift of
the machine over that time, not only between two adjacent processes. Each cell's compile caches
are its own, empty for its first process (cold), reused by later ones (warm). `cell_metrics`
turns the processes' raw answers into the stored figures. Imports no framework.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twinbench.harness.environment import COMPILE_CACHE_VARIABLE
from twinbench.harness.memory import analytic_floor_bytes, cell_memory_metrics, optimizer_slots
from twinbench.harness.process import CellFailed, WorkerProcess
from twinbench.harness.stats import is_converged, summarize, summarize_groups
from twinbench.spec import analytic_flops

if TYPE_CHECKING:
    from twinbench.harness.runner import Cell, Progress, RunSession, RunSettings


@dataclass
class CellProcess:
    """One worker process of a cell: what it said when ready, its samples, its final word."""

    worker: WorkerProcess
    ready: dict[str, Any]
    samples: list[float] = field(default_factory=list)
    spent: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)


@dataclass
class _CellRuns:
    """A cell's processes so far, or the failure that ended it."""

    cell: Cell
    processes: list[CellProcess] = field(default_factory=list)
    failure: CellFailed | None = None


def measure_cells(
    session: RunSession, groups: list[list[Cell]], progress: Progress, caches: Path
) -> None:
    """Each cell of ``groups`` in ``settings.repeats`` worker processes, one record per cell.

    Pass r goes through the groups in order; in each it sets up process r of every cell of the
    group and times them in interleaved rounds (A B C D A B …), so a slow drift of the machine
    hits every cell of a group alike, and the processes of one cell lie a whole pass apart.
    A cell's first process compiles with empty compile caches (cold); later ones find what it
    left (warm). The steady-state budget is split over the processes. A group is recorded as
    soon as its last pass is done; Ctrl-C records what every cell has of finished processes.
    """
    settings = session.settings
    runs = [[_CellRuns(cell) for cell in group] for group in groups]
    recorded: set[int] = set()
    try:
        for repeat in range(settings.repeats):
            for index, group in enumerate(runs):
                alive = [r for r in group if r.failure is None]
                _measure_round(session, alive, repeat, progress, caches)
                if repeat == settings.repeats - 1:
                    _record_group(session, group, progress)
                    recorded.add(index)
    except KeyboardInterrupt:
        for index, group in enumerate(runs):
            if index not in recorded:
                _record_group(session, group, progress, interrupted=True)
        raise


def _record_group(
    session: RunSession, group: list[_CellRuns], progress: Progress, *, interrupted: bool = False
) -> None:
    """Record each cell of ``group``: its processes, or the failure that ended it.

    ``interrupted``: the run stops here; a cell is recorded with the processes that finished
    (none: not recorded), the one cut short left out.
    """
    repeats = session.settings.repeats
    for r in group:
        finished = [p for p in r.processes if p.final]
        if r.failure is not None:
            kept = sum(len(p.samples) for p in r.processes)
            where = f"process {len(r.processes) + 1} of {repeats}"
            note = f" ({kept} samples of earlier processes kept)" if kept else ""
            session.record_failure(r.cell, r.failure.status, f"{where}: {r.failure.error}{note}")
        elif interrupted and not finished:
            continue
        else:
            session.record_measured(r.cell, finished)
        status = r.failure and r.failure.status or "ok"
        # the processes a failure left unstarted, so that a count of processes still adds up
        left = repeats - len(finished)
        progress("cell-done", {"cell": r.cell.label, "status": status, "processes_left": left})


def _cache_environment(caches: Path, cell: Cell) -> dict[str, str]:
    """Compile caches of one cell, shared by its processes and by no other cell."""
    root = caches / cell.label.replace("/", "_").replace(" ", "_")
    return {
        COMPILE_CACHE_VARIABLE: str(root),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "JAX_COMPILATION_CACHE_DIR": str(root / "xla"),
        # cache every compilation, however quick: the warm figure must be warm for all of them
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _measure_round(
    session: RunSession, runs: list[_CellRuns], repeat: int, progress: Progress, caches: Path
) -> None:
    """Process ``repeat`` of every cell: set them up side by side, then compile each alone,
    then time them in interleaved rounds."""
    settings = session.settings
    suffix = f" (process {repeat + 1}/{settings.repeats})" if settings.repeats > 1 else ""
    workers = _start(session, runs, repeat, progress, caches, suffix)
    active: list[tuple[_CellRuns, CellProcess]] = []
    try:
        for r, worker in _set_up(session, workers):
            progress("compile", {"cell": r.cell.label + suffix})
            process = _compile(session, r, worker)
            if process is not None:
                active.append((r, process))
        _time_rounds(session, active, progress, suffix)
    finally:
        for _, worker in workers:
            worker.close()  # a no-op for those already finished


def _start(
    session: RunSession,
    runs: list[_CellRuns],
    repeat: int,
    progress: Progress,
    caches: Path,
    suffix: str,
) -> list[tuple[_CellRuns, WorkerProcess]]:
    """Process ``repeat`` of every cell, all started at once."""
    settings = session.settings
    workers: list[tuple[_CellRuns, WorkerProcess]] = []
    try:
        for r in runs:
            progress("setup", {"cell": r.cell.label + suffix})
            worker = WorkerProcess(
                # FLOPs per step are the same in every process: counted once, by the first
                {**r.cell.request(settings), "count_flops": repeat == 0},
                threads=settings.threads,
                env=_cache_environment(caches, r.cell),
            )
            workers.append((r, worker))
    except BaseException:
        for _, worker in workers:
            worker.close()
        raise
    return workers


def _set_up(
    session: RunSession, workers: list[tuple[_CellRuns, WorkerProcess]]
) -> list[tuple[_CellRuns, WorkerProcess]]:
    """The workers that finished setting up; a failure ends its cell.

    Set-up (interpreter start, framework imports, model build) is no measurement, so the workers
    do it side by side on the machine's cores; each then waits for its turn to compile, alone.
    """
    ready = []
    with session.clock.timed("set-up"):
        for r, worker in workers:
            try:
                worker.receive(session.settings.timeout, "set_up")
            except CellFailed as failure:
                worker.close()
                r.failure = failure
                continue
            ready.append((r, worker))
    return ready


def _compile(session: RunSession, r: _CellRuns, worker: WorkerProcess) -> CellProcess | None:
    """Let one set-up worker compile, take its first step, warm up and calibrate its block."""
    started = time.monotonic()
    worker.send({"cmd": "compile"})
    try:
        ready = worker.receive(session.settings.timeout, "ready")
    except CellFailed as failure:
        worker.close()
        r.failure = failure
        session.clock.add("set-up", time.monotonic() - started)
        return None
    first_step = float(ready["time_to_first_step_s"])
    session.clock.add("compile and first step", first_step)
    session.clock.add("set-up", time.monotonic() - started - first_step)  # warm-up, calibration
    process = CellProcess(worker, ready)
    r.processes.append(process)
    return process


def _time_rounds(
    session: RunSession,
    active: list[tuple[_CellRuns, CellProcess]],
    progress: Progress,
    suffix: str,
) -> None:
    """Interleaved timing rounds (A B C D A B …) until each process's share of the budget is
    spent or its median has converged; then its last figures."""
    settings = session.settings
    budget = settings.budget / settings.repeats
    round_seconds = min(1.0, max(0.2, budget / 5))
    active = list(active)
    while active:
        for entry in list(active):
            r, process = entry
            progress("measure", {"cell": r.cell.label + suffix, "samples": len(process.samples)})
            seconds = min(round_seconds, budget - process.spent)
            started = time.monotonic()
            try:
                process.worker.send({"cmd": "measure", "seconds": seconds})
                process.samples += process.worker.receive(seconds * 10 + 60, "samples")
            except CellFailed as failure:
                active.remove(entry)
                process.worker.close()
                r.processes.remove(process)
                r.failure = failure
                continue
            finally:
                session.clock.add("steady-state timing", time.monotonic() - started)
            process.spent += time.monotonic() - started
            if process.spent >= budget or is_converged(summarize(process.samples)):
                active.remove(entry)
                process.final = _finish(process.worker)
                progress("process-done", {"cell": r.cell.label + suffix})


def _finish(worker: WorkerProcess) -> dict[str, Any]:
    """The worker's last figures (peak memory); it is stopped either way."""
    try:
        worker.send({"cmd": "finish"})
        final: dict[str, Any] = worker.receive(60, "final")
    except CellFailed as failure:
        final = {"finish_error": failure.error}
    finally:
        worker.close()
    return final


def _compile_s(mode: str, ready: dict[str, Any], median: float) -> float | None:
    """Compile seconds of one process; None for a mode that does not compile."""
    if mode == "torch-compile":  # compiled lazily: the first call minus a steady step
        return max(float(ready["time_to_first_step_s"]) - median, 0.0)
    compile_s = ready["compile_s"]
    return None if compile_s is None else float(compile_s)


def _cold_and_warm(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """The first process's figure (empty caches) and the median of the others' (warm caches)."""
    warm = [v for v in values[1:] if v is not None]
    return values[0], (float(np.median(warm)) if warm else None)


def cell_metrics(processes: list[CellProcess], settings: RunSettings, cell: Cell) -> dict[str, Any]:
    """Everything recorded for a measured cell, derived from its processes' raw answers.

    Step-time figures pool every process's samples; their CI is the hierarchical bootstrap over
    processes. Compile and first-step figures are per process: the first (cold caches) is the
    one stored under the historical names ``compile_s`` and ``time_to_first_step_s``.
    """
    groups = [p.samples for p in processes]
    summary = summarize_groups(groups)
    size = cell.point.size
    ready = processes[0].ready
    medians = [float(np.median(g)) for g in groups]
    compiles = [_compile_s(cell.mode, p.ready, m) for p, m in zip(processes, medians, strict=True)]
    first_steps = [float(p.ready["time_to_first_step_s"]) for p in processes]
    compile_cold, compile_warm = _cold_and_warm(compiles)
    first_cold, first_warm = _cold_and_warm(first_steps)
    peaks = [p.final.get("peak_device_bytes") or p.final.get("peak_rss_bytes") for p in processes]
    rss = [p.final["peak_rss_bytes"] for p in processes if p.final.get("peak_rss_bytes")]
    floor = _floor_bytes(cell, settings, ready.get("params"))
    finish_errors = [p.final["finish_error"] for p in processes if "finish_error" in p.final]
    flops = ready.get("flops_per_step")
    return {
        "median_s": summary.median,
        "iqr_s": summary.iqr,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        "n_samples": summary.n,
        "noisy": summary.noisy,
        "converged": is_converged(summary),
        "processes": len(processes),
        "process_sample_counts": [len(g) for g in groups],
        "process_medians_s": medians,
        "block_size": ready["block_size"],
        "time_to_first_step_s": first_cold,
        "time_to_first_step_warm_s": first_warm,
        "time_to_first_step_s_by_process": first_steps,
        "compile_s": compile_cold,
        "compile_warm_s": compile_warm,
        "compile_s_by_process": compiles,
        "compile_cache_entries_at_start": [p.ready.get("compile_cache_entries") for p in processes],
        "setup_s": ready["setup_s"],
        "setup_s_by_process": [float(p.ready["setup_s"]) for p in processes],
        "warmup_steps": ready["warmup_steps"],
        "batch_size": size.batch_size,
        "seq_len": cell.point.seq_len,
        "samples_per_s": size.batch_size / summary.median,
        "tokens_per_s": (
            size.batch_size * size.tokens_per_sample / summary.median
            if size.tokens_per_sample
            else None
        ),
        "flops_per_step": flops,
        "achieved_flops_per_s": flops / summary.median if flops else None,
        "analytic_flops_per_step": _analytic_flops(cell),
        # the whole process's peaks, runtime included (attributable_* below leave it out)
        "process_peak_memory_bytes": max((b for b in peaks if b), default=None),
        "process_peak_rss_bytes": max(rss, default=None),
        **cell_memory_metrics([p.final for p in processes], floor),
        "params": ready.get("params"),
        "twin_loc": ready.get("twin_loc"),
        "threads": settings.threads,
        "finish_error": finish_errors[0] if finish_errors else None,
    }


def _floor_bytes(cell: Cell, settings: RunSettings, params: int | None) -> int | None:
    """Parameters, gradients and optimizer state of the cell's step, in bytes."""
    if params is None:
        return None
    workload = cell.point.workload
    slots = optimizer_slots(workload.optimizers[workload.train_optimizer])
    return analytic_floor_bytes(params, dtype=settings.dtype, phase=cell.phase, slots=slots)


def _analytic_flops(cell: Cell) -> float | None:
    """The workload's own FLOP formula for this cell's step (a forward pass is a third of a
    training step under the formulas' 2x-forward backward)."""
    flops = analytic_flops(cell.point.workload, cell.point.size)
    if flops is None:
        return None
    return flops if cell.phase == "train" else flops / 3
