"""One run, read from the store and arranged into the rows every report format shows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinbench.harness.runner import MODES
from twinbench.harness.verdict import (
    FLOPS_DISAGREEMENT,
    Verdict,
    flops_disagreement,
    verdicts_for_run,
)
from twinbench.store import DB_NAME, CellRecord, ResultStore, RunRecord

CELL_COLUMNS = (
    "workload",
    "size",
    "phase",
    "mode",
    "median ms",
    "95% CI ms",
    "vs torch-eager",
    "first step s",
    "compile s",
    "peak MB",
    "% peak",
    "notes",
)
NOTE_LEGEND = (
    "noisy: IQR over 10% of the median; wide CI: the 95% CI of the median is wider "
    "than ±2% when the cell's budget ran out; % peak: achieved FLOP/s over the best "
    "matmul FLOP/s measured at the start of the run"
)


@dataclass
class RunSummary:
    run: RunRecord
    cells: list[CellRecord]
    parity: list[dict[str, Any]]
    verdicts: list[Verdict]
    rows: list[dict[str, str]]
    notes: list[str]


def load_summary(out: Path, run_id: int | None = None) -> RunSummary:
    """The run ``run_id`` (default: the latest) from the store in ``out``."""
    with ResultStore(Path(out) / DB_NAME) as store:
        if run_id is None:
            run_id = store.latest_run_id()
            if run_id is None:
                from twinbench.store import StoreError

                raise StoreError(f"no runs in {Path(out) / DB_NAME} yet; run `twinbench run`")
        return summarize_run(store.run(run_id), store.cells(run_id), store.parity(run_id))


def _peak(run: RunRecord) -> float | None:
    peaks = [v for v in run.info.get("peak_flops", {}).values() if isinstance(v, int | float)]
    return max(peaks) if peaks else None


def _cell_row(cell: CellRecord, baseline: CellRecord | None, peak: float | None) -> dict[str, str]:
    m = cell.metrics
    row = {"workload": cell.workload, "size": cell.size, "phase": cell.phase, "mode": cell.mode}
    if cell.status != "ok":
        first_line = (cell.error or "").splitlines()[0][:120] if cell.error else ""
        return {**row, "notes": f"{cell.status.upper()}: {first_line}"}
    median = m["median_s"]
    row["median ms"] = f"{median * 1e3:.4g}"
    row["95% CI ms"] = f"{m['ci_low_s'] * 1e3:.4g}–{m['ci_high_s'] * 1e3:.4g}"
    if baseline is not None and baseline.status == "ok":
        row["vs torch-eager"] = f"{baseline.metrics['median_s'] / median:.2f}×"
    row["first step s"] = f"{m['time_to_first_step_s']:.3g}"
    row["compile s"] = f"{m['compile_s']:.3g}" if m.get("compile_s") is not None else "—"
    if m.get("peak_memory_bytes"):
        row["peak MB"] = f"{m['peak_memory_bytes'] / 2**20:.0f}"
    if peak and m.get("achieved_flops_per_s"):
        row["% peak"] = f"{100 * m['achieved_flops_per_s'] / peak:.2g}"
    flags = []
    if m.get("noisy"):
        flags.append("noisy")
    if not m.get("converged"):
        flags.append("wide CI")
    row["notes"] = ", ".join(flags)
    return row


def _display_order(cells: list[CellRecord]) -> Any:
    """Groups in the order they were measured; within a group, modes in the canonical order."""
    first_seen: dict[tuple[str, str, str], int] = {}
    for cell in cells:
        first_seen.setdefault((cell.workload, cell.size, cell.phase), len(first_seen))
    mode_rank = {mode: i for i, mode in enumerate(MODES)}

    def key(cell: CellRecord) -> tuple[int, int]:
        return first_seen[(cell.workload, cell.size, cell.phase)], mode_rank.get(cell.mode, 99)

    return key


def summarize_run(
    run: RunRecord, cells: list[CellRecord], parity: list[dict[str, Any]]
) -> RunSummary:
    """Rows, verdicts and notes for one stored run."""
    peak = _peak(run)
    baselines = {
        (c.workload, c.size, c.phase, c.dtype): c for c in cells if c.mode == "torch-eager"
    }
    cells = sorted(cells, key=_display_order(cells))
    rows = [
        _cell_row(c, baselines.get((c.workload, c.size, c.phase, c.dtype)), peak) for c in cells
    ]
    notes = []
    groups: dict[tuple[str, str, str], list[CellRecord]] = {}
    for cell in cells:
        groups.setdefault((cell.workload, cell.size, cell.phase), []).append(cell)
    for (workload, size, phase), group in groups.items():
        gap = flops_disagreement(group)
        if gap is not None and gap > FLOPS_DISAGREEMENT:
            notes.append(
                f"{workload}/{size} {phase}: the FLOP counters disagree by {gap:.0%} "
                "(torch.utils.flop_counter counts matmuls and convolutions only; XLA's "
                "cost_analysis counts every operation)"
            )
    for record in parity:
        if not record["passed"]:
            notes.append(
                f"{record['workload']}/{record['size']}: parity FAILED — measured, but "
                "no speed verdict"
            )
    if run.status != "finished":
        notes.append(f"run status: {run.status} — only the cells finished before it stopped")
    return RunSummary(run, cells, parity, verdicts_for_run(cells, parity), rows, notes)


def settings_line(run: RunRecord) -> str:
    s = run.settings
    tf32 = "TF32 allowed" if s.get("allow_tf32") else "TF32 off on both sides"
    return (
        f"threads {s.get('threads')}, dtype {s.get('dtype')}, device {s.get('device')}, "
        f"{tf32}, budget {s.get('budget')} s/cell, torch.compile mode "
        f"{s.get('torch_compile_mode')}, seed {s.get('seed')}"
    )


def environment_line(run: RunRecord) -> str:
    e = run.environment
    v = e.get("versions", {})
    gpus = ", ".join(e.get("gpus") or []) or "no GPU"
    return (
        f"{e.get('cpu_model')} ({e.get('usable_cores')} usable cores), {gpus}; "
        f"Python {e.get('python')}, torch {v.get('torch')}, jax {v.get('jax')}, "
        f"jaxlib {v.get('jaxlib')}, flax {v.get('flax')}, optax {v.get('optax')}"
    )
