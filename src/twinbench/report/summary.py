"""One run, read from the store and arranged into the rows every report format shows."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from twinbench.harness.memory_budget import MemoryFit
from twinbench.harness.stats import ratio_by_rounds
from twinbench.modes import COMPILED_MODES, EAGER_MODES, FRAMEWORK_OF, MODES
from twinbench.report.memory import memory_verdicts_for_run, sequence_budget_notes
from twinbench.report.text import fmt_seconds
from twinbench.report.verdict import (
    FLOPS_DISAGREEMENT,
    Verdict,
    flops_disagreement,
    run_spread,
    verdicts_for_run,
)
from twinbench.store import DB_NAME, CellRecord, ResultStore, RunRecord
from twinbench.suite import view_for

CELL_COLUMNS = (
    "workload",
    "size",
    "phase",
    "mode",
    "median ms",
    "95% CI ms",
    "processes ms",
    "vs torch-eager",
    "first step s",
    "compile s",
    "model MB",
    "process MB",
    "% peak",
    "notes",
)
NOTE_LEGEND = (
    "95% CI: of the median, over the cell's worker processes and the samples within them; "
    "processes: the lowest and highest median of those processes; first step and compile: "
    "the first process (empty compile caches) / the median of the later ones (warm caches); "
    "noisy: IQR over 10% of the median; wide CI: the 95% CI of the median is wider "
    "than ±2% when the cell's budget ran out; % peak: achieved FLOP/s over the best "
    "matmul FLOP/s measured at the start of the run; model MB: the cell's attributable peak "
    "(the model's state and one step's memory, runtime and compiler left out, median over "
    "processes) "
    "with its floor, parameters + gradients + optimizer state; process MB: the whole "
    "process's peak, runtime included"
)
ONE_PROCESS_NOTE = (
    "each cell was measured in one worker process: its CIs cover the noise inside that "
    "process only, not the variation between processes, and a rerun may disagree "
    "(measure with --repeats 2 or more)"
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
    with ResultStore(Path(out) / DB_NAME, read_only=True) as store:
        if run_id is None:
            run_id = store.latest_run_id()
            if run_id is None:
                from twinbench.store import StoreError

                raise StoreError(f"no runs in {Path(out) / DB_NAME} yet; run `twinbench run`")
        return summarize_run(store.run(run_id), store.cells(run_id), store.parity(run_id))


def _peak(run: RunRecord) -> float | None:
    peaks = [v for v in run.info.get("peak_flops", {}).values() if isinstance(v, int | float)]
    return max(peaks) if peaks else None


def _readable(cell: CellRecord, peak: float | None) -> CellRecord:
    """``cell``, or an error cell naming its row when its stored metrics lack what a measured
    cell has (a row written by hand, cut short or by another tool): the others still report."""
    if cell.status != "ok":
        return cell
    try:
        _cell_row(cell, None, peak)
        float(cell.metrics["median_s"]) / float(cell.metrics["median_s"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        error = f"stored metrics unreadable (cells row id {cell.id})"
        return replace(cell, status="error", error=error, metrics={})
    return cell


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
        # round by round, as the verdicts compare cells: drift between rounds cancels
        speedup = ratio_by_rounds(baseline.sample_groups(), cell.sample_groups())
        row["vs torch-eager"] = f"{speedup:.2f}×"
    process_medians = m.get("process_medians_s") or []
    if len(process_medians) > 1:
        row["processes ms"] = f"{min(process_medians) * 1e3:.4g}–{max(process_medians) * 1e3:.4g}"
    row["first step s"] = _cold_warm(m["time_to_first_step_s"], m.get("time_to_first_step_warm_s"))
    row["compile s"] = _cold_warm(m.get("compile_s"), m.get("compile_warm_s"))
    if m.get("attributable_peak_bytes") is not None:
        row["model MB"] = _model_memory(m)
    if m.get("process_peak_memory_bytes"):
        row["process MB"] = f"{m['process_peak_memory_bytes'] / 2**20:.0f}"
    if peak and m.get("achieved_flops_per_s"):
        row["% peak"] = f"{100 * m['achieved_flops_per_s'] / peak:.2g}"
    flags = []
    if m.get("noisy"):
        flags.append("noisy")
    if not m.get("converged"):
        flags.append("wide CI")
    row["notes"] = ", ".join(flags)
    return row


def _model_memory(m: dict[str, Any]) -> str:
    """Attributable peak in MB, the processes' range when they differ, and the floor."""
    text = f"{m['attributable_peak_bytes'] / 2**20:.3g}"
    by_process = m.get("attributable_peak_bytes_by_process") or []
    if len(set(by_process)) > 1:
        text += f" ({min(by_process) / 2**20:.3g}–{max(by_process) / 2**20:.3g})"
    if m.get("analytic_floor_bytes") is not None:
        text += f", floor {m['analytic_floor_bytes'] / 2**20:.3g}"
    return text


def _cold_warm(cold: float | None, warm: float | None) -> str:
    if cold is None:
        return "—"
    return f"{cold:.3g}" if warm is None else f"{cold:.3g} / {warm:.3g}"


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
    cells = [_readable(c, peak) for c in cells]
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
    measured = [c for c in cells if c.status == "ok"]
    if measured and all(len(c.sample_groups()) == 1 for c in measured):
        notes.append(ONE_PROCESS_NOTE)
    spread = run_spread(cells)
    if spread is not None:
        notes.append(
            f"between processes: a worker process's median strays from its cell's by "
            f"{math.expm1(math.sqrt(spread.variance)):.1%} (standard deviation, pooled over "
            f"{spread.df} processes beyond each cell's first); verdicts compare cells round by "
            "round, so a drift between rounds cancels, and no CI is narrower than that spread "
            "implies; a verdict states its 95 % rerun interval, the range a rerun's ratio lands "
            "in (that CI widened by √2 in log scale: the rerun carries its own error)"
        )
    busy = busy_machine_note(run)
    if busy:
        notes.append(busy)
    notes += sequence_budget_notes(run.info)
    verdicts = verdicts_for_run(cells, parity) + memory_verdicts_for_run(cells, parity)
    return RunSummary(run, cells, parity, verdicts, rows, notes)


def busy_machine_note(run: RunRecord) -> str | None:
    """A warning when other processes took more than their share of the cores during the run."""
    load = run.info.get("machine_load")
    if not isinstance(load, dict) or load.get("quiet", True):
        return None
    return (
        f"the machine was not quiet: other processes took {load['other_share']:.0%} of the "
        f"{load['cores']} cores' time during the run (load average "
        f"{load['load_average_start']:.1f} → {load['load_average_end']:.1f}); timings may be "
        "disturbed — rerun on an idle machine before trusting a close verdict"
    )


def breakdown_line(run: RunRecord) -> str | None:
    """Where the run's wall time went, in one line; None for runs that did not record it."""
    parts = run.info.get("time_breakdown")
    if not isinstance(parts, dict) or not parts.get("wall_s"):
        return None
    wall = float(parts["wall_s"])
    shown = ", ".join(
        f"{name} {fmt_seconds(float(seconds))} ({seconds / wall:.0%})"
        for name, seconds in parts.items()
        if name != "wall_s"
    )
    return f"{fmt_seconds(wall)} in all: {shown}"


def header_lines(run: RunRecord) -> list[tuple[str, str]]:
    """The lines every report prints under its tables or title, labelled: the machine, the
    settings and, for runs that recorded it, where the wall time went."""
    lines = [("Machine", environment_line(run)), ("Settings", settings_line(run))]
    breakdown = breakdown_line(run)
    return [*lines, ("Time", breakdown)] if breakdown else lines


def settings_line(run: RunRecord) -> str:
    s = run.settings
    if s.get("kind"):  # a suite run keeps its own settings: list the simple ones
        scalars = (str, int, float, bool)
        return ", ".join(f"{k} {v}" for k, v in s.items() if isinstance(v, scalars))
    tf32 = "TF32 allowed" if s.get("allow_tf32") else "TF32 off on both sides"
    return (
        f"threads {s.get('threads')}, dtype {s.get('dtype')}, device {s.get('device')}, "
        f"{tf32}, budget {s.get('budget')} s/cell over {s.get('repeats', 1)} worker "
        "process(es) each, torch.compile mode "
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


# ---------------------------------------------------------------------------------------------
# Derived views shared by the HTML and Markdown reports and by the recommendations.

_SWEEP_BS = re.compile(r"(?:^|\s)bs=(\d+)(?=\s|$)")


@dataclass(frozen=True)
class BreakEven:
    """How many steady-state steps a compiled mode needs before its compile time has paid off.

    ``steps`` is compile_s / (eager median − compiled median); None when the compiled mode is
    not faster per step, so compiling never pays off.
    """

    compiled_mode: str
    eager_mode: str
    compile_s: float
    compiled_median_s: float
    eager_median_s: float

    @property
    def steps(self) -> float | None:
        saving = self.eager_median_s - self.compiled_median_s
        return self.compile_s / saving if saving > 0 else None

    @property
    def across_frameworks(self) -> bool:
        return FRAMEWORK_OF[self.compiled_mode] != FRAMEWORK_OF[self.eager_mode]


@dataclass(frozen=True)
class SweepSeries:
    """One mode's cells along a batch-size sweep, sorted by batch size."""

    workload: str
    base: str  # the size label without its "bs=N" part, e.g. "small" or "small seq=128"
    phase: str
    mode: str
    batch_sizes: tuple[int, ...]
    median_s: tuple[float, ...]
    ci_low_s: tuple[float, ...]
    ci_high_s: tuple[float, ...]
    samples_per_s: tuple[float, ...]
    process_peak_memory_bytes: tuple[float | None, ...]
    attributable_peak_bytes: tuple[float | None, ...] = ()

    @property
    def framework(self) -> str:
        return FRAMEWORK_OF.get(self.mode, self.mode)

    @property
    def memory_fit(self) -> MemoryFit | None:
        """Attributable peak against batch size, least squares (None under two points)."""
        points = {
            bs: float(m)
            for bs, m in zip(self.batch_sizes, self.attributable_peak_bytes, strict=False)
            if m is not None
        }
        return MemoryFit.of(points)

    @property
    def exponent(self) -> float | None:
        """Slope of log(step time) against log(batch size): 1 is linear growth."""
        if len(set(self.batch_sizes)) < 2:
            return None
        slope, _ = np.polyfit(np.log(self.batch_sizes), np.log(self.median_s), 1)
        return float(slope)


def ok_cells(cells: list[CellRecord]) -> dict[str, CellRecord]:
    """The measured cells of one group by mode (cells without samples or a median left out)."""
    return {c.mode: c for c in cells if c.status == "ok" and c.metrics.get("median_s") is not None}


def groups(summary: RunSummary) -> dict[tuple[str, str, str], list[CellRecord]]:
    """Cells by (workload, size, phase), in the order the run measured them."""
    out: dict[tuple[str, str, str], list[CellRecord]] = {}
    for cell in summary.cells:
        out.setdefault((cell.workload, cell.size, cell.phase), []).append(cell)
    return out


def base_size(size: str) -> str:
    """``small bs=64 seq=128`` → ``small``: the preset a sweep point starts from."""
    return size.split(" ")[0]


def sweep_batch_size(cell: CellRecord) -> int | None:
    """The batch size of a batch-sweep point, None for a cell that is not one."""
    match = _SWEEP_BS.search(cell.size)
    if match is None or cell.metrics.get("batch_size") is None:
        return None
    return int(match.group(1))


def parity_record(summary: RunSummary, workload: str, size: str) -> dict[str, Any] | None:
    """The parity check that covers a group; a sweep point was checked at its base size."""
    for wanted in (size, base_size(size)):
        for record in summary.parity:
            if record["workload"] == workload and record["size"] == wanted:
                return record
    return None


def break_evens(cells: list[CellRecord]) -> list[BreakEven]:
    """Every compiled mode against every eager mode measured in the same group."""
    ok = ok_cells(cells)
    out = []
    for compiled in COMPILED_MODES:
        cell = ok.get(compiled)
        if cell is None or cell.metrics.get("compile_s") is None:
            continue
        for eager in EAGER_MODES:
            if eager in ok:
                out.append(
                    BreakEven(
                        compiled,
                        eager,
                        float(cell.metrics["compile_s"]),
                        float(cell.metrics["median_s"]),
                        float(ok[eager].metrics["median_s"]),
                    )
                )
    return out


def sweep_series(cells: list[CellRecord]) -> list[SweepSeries]:
    """Batch-sweep cells grouped per (workload, base, phase, mode); series of 2+ points only."""
    points: dict[tuple[str, str, str, str], list[tuple[int, CellRecord]]] = {}
    for cell in cells:
        bs = sweep_batch_size(cell)
        if bs is None or cell.status != "ok" or cell.metrics.get("median_s") is None:
            continue
        base = " ".join(_SWEEP_BS.sub(" ", cell.size).split())
        points.setdefault((cell.workload, base, cell.phase, cell.mode), []).append((bs, cell))
    mode_rank = {mode: i for i, mode in enumerate(MODES)}
    series = []
    for (workload, base, phase, mode), found in sorted(
        points.items(), key=lambda kv: (kv[0][:3], mode_rank.get(kv[0][3], 99))
    ):
        if len(found) < 2:
            continue
        found.sort(key=lambda p: p[0])
        ms = [c.metrics for _, c in found]
        series.append(
            SweepSeries(
                workload,
                base,
                phase,
                mode,
                tuple(bs for bs, _ in found),
                tuple(float(m["median_s"]) for m in ms),
                tuple(float(m.get("ci_low_s", m["median_s"])) for m in ms),
                tuple(float(m.get("ci_high_s", m["median_s"])) for m in ms),
                tuple(
                    float(m.get("samples_per_s") or bs / m["median_s"])
                    for (bs, _), m in zip(found, ms, strict=True)
                ),
                tuple(m.get("process_peak_memory_bytes") for m in ms),
                tuple(m.get("attributable_peak_bytes") for m in ms),
            )
        )
    return series


def peak_flops(run: RunRecord) -> float | None:
    """The machine's measured peak FLOP/s (the best framework's matmul probe), if any."""
    return _peak(run)


@dataclass(frozen=True)
class SuiteSection:
    """What the report shows of a suite run (``autodiff``, ``optim``, ``parallel``, …)."""

    kind: str
    title: str
    markdown: str
    figures: list[tuple[str, Figure]]
    text: str  # the plain rendering the terminal prints


def suite_section(run: RunRecord) -> SuiteSection | None:
    """The section of a suite run, rendered by the view its suite registered; None for a run.

    Falls back to the text stored when the suite ran (older runs, kinds without a view here).
    """
    kind = run.settings.get("kind")
    if not kind:
        return None
    kind = str(kind)
    stored_text = str(run.info.get("suite_report") or "")
    view = view_for(kind)
    data = run.info.get(kind)
    if view is None or not isinstance(data, dict):
        return SuiteSection(kind, f"The {kind} suite", _as_markdown(stored_text), [], stored_text)
    figures = view.figures(data) if view.figures is not None else []
    markdown = view.markdown(data)
    return SuiteSection(kind, view.title, markdown, figures, stored_text or markdown)


def _as_markdown(text: str) -> str:
    """Stored text that is not Markdown tables (aligned plain text) goes in a code block."""
    return text if text.lstrip().startswith(("|", "#", "-")) else f"```text\n{text}\n```"
