"""Two stored runs side by side: which cells got faster or slower, and are we sure?

A cell of run A is matched with the cell of run B that has the same (workload, size, framework,
mode, phase, dtype, device). The change is the ratio of medians B / A (above 1: B is slower) with
a bootstrap CI from both cells' raw samples. As asv does, a cell is *improved* or *regressed*
only when the change is larger than the threshold **and** statistically significant — the
Mann-Whitney U p-value below 0.05 and the CI excluding 1 — never by the threshold alone, since a
10 % gap between two noisy cells of five samples says nothing. The threshold is a factor, as in
asv: with 10 %, B/A above 1.10 can be a regression and A/B above 1.10 (B/A below 1/1.10) an
improvement, so a slowdown and a speed-up of the same factor are treated alike.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.errors import TwinbenchError
from twinbench.harness.stats import ProcessSpread, mann_whitney_p, ratio_of_medians_grouped
from twinbench.report.text import md_cell
from twinbench.report.verdict import run_spread
from twinbench.store import KEY_COLUMNS, CellKey, CellRecord, ResultStore, RunRecord

SIGNIFICANCE = 0.05
DEFAULT_THRESHOLD = 0.10
CLASSES = ("regressed", "improved", "unchanged", "failed", "added", "removed")
MACHINE_KEYS = ("cpu_model", "gpus", "usable_cores")
SETTING_KEYS = ("threads", "dtype", "device", "allow_tf32", "torch_compile_mode")

Key = tuple[str, ...]


@dataclass
class CompareRow(CellKey):
    """One cell of the comparison. ratio is median(B) / median(A): above 1, B is slower."""

    change: str  # one of CLASSES
    median_a_s: float | None = None
    median_b_s: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_a: int = 0
    n_b: int = 0
    note: str = ""

    @property
    def significant(self) -> bool:
        """p < 0.05 and the CI of the ratio excludes 1 (both required, as asv does)."""
        if self.ratio is None or self.p_value is None:
            return False
        assert self.ci_low is not None and self.ci_high is not None
        excludes_one = self.ci_low > 1.0 or self.ci_high < 1.0
        return self.p_value < SIGNIFICANCE and excludes_one

    def regressed_by_more_than(self, fraction: float) -> bool:
        """Significantly slower in B by a factor above 1 + fraction (for CI gates)."""
        return self.significant and self.ratio is not None and self.ratio > 1.0 + fraction

    @property
    def broke_in_b(self) -> bool:
        """Measured in A, failed (error, crash, timeout) in B."""
        return self.change == "failed" and self.median_a_s is not None and self.median_b_s is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


@dataclass
class Comparison:
    """Run B against run A: one row per cell, and warnings about what makes them incomparable."""

    run_a: RunRecord
    run_b: RunRecord
    threshold: float
    rows: list[CompareRow]
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many rows fall in each class (every class present, zero included)."""
        counts = dict.fromkeys(CLASSES, 0)
        for row in self.rows:
            counts[row.change] += 1
        return counts

    def regressions(self, fraction: float) -> list[CompareRow]:
        """Rows significantly slower in B by more than ``fraction`` (0.05 = 5 %), and cells that
        worked in A but failed in B — a crash is a regression to a CI gate too."""
        return [row for row in self.rows if row.regressed_by_more_than(fraction) or row.broke_in_b]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": _run_dict(self.run_a),
            "run_b": _run_dict(self.run_b),
            "threshold": self.threshold,
            "significance": SIGNIFICANCE,
            "warnings": list(self.warnings),
            "counts": self.counts(),
            "rows": [row.to_dict() for row in self.rows],
        }


def _run_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": run.started_at,
        "status": run.status,
        "environment": run.environment,
        "settings": run.settings,
    }


def compare_runs(
    store: ResultStore, run_a: int, run_b: int, *, threshold: float = DEFAULT_THRESHOLD
) -> Comparison:
    """Compare run_b with run_a cell by cell; ``threshold`` is a fraction (0.10 = 10 %).

    Raises TwinbenchError when the two ids are the same or the threshold is negative, and
    StoreError (listing the valid ids) when a run does not exist.
    """
    if run_a == run_b:
        raise TwinbenchError(f"cannot compare run {run_a} with itself; give two different runs")
    if not threshold >= 0:
        raise TwinbenchError(f"the threshold must be 0 or more, got {threshold:g}")
    record_a, record_b = store.run(run_a), store.run(run_b)
    return compare_cells(
        record_a, store.cells(run_a), record_b, store.cells(run_b), threshold=threshold
    )


def compare_cells(
    run_a: RunRecord,
    cells_a: list[CellRecord],
    run_b: RunRecord,
    cells_b: list[CellRecord],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> Comparison:
    """The comparison itself, from records already loaded (see ``compare_runs``)."""
    by_key_a, by_key_b = _by_key(cells_a), _by_key(cells_b)
    spread = run_spread(cells_a + cells_b)  # the two runs' processes stray alike, or nearly
    rows = [
        _compare_cell(cell, by_key_b.get(key), threshold, spread) for key, cell in by_key_a.items()
    ]
    rows += [_one_sided(cell, "added") for key, cell in by_key_b.items() if key not in by_key_a]
    return Comparison(run_a, run_b, threshold, rows, environment_warnings(run_a, run_b))


def _by_key(cells: list[CellRecord]) -> dict[Key, CellRecord]:
    # a key occurs once per run; should one repeat, the later cell stands
    return {tuple(getattr(c, k) for k in KEY_COLUMNS): c for c in cells}


def _usable(cell: CellRecord) -> bool:
    return cell.status == "ok" and bool(cell.samples)


def _one_sided(cell: CellRecord, change: str) -> CompareRow:
    median = cell.metrics.get("median_s") if _usable(cell) else None
    where = "B" if change == "added" else "A"
    note = "" if _usable(cell) else f"{cell.status} in run {where}"
    return CompareRow(
        **cell.key_fields(),
        change=change,
        median_a_s=median if change == "removed" else None,
        median_b_s=median if change == "added" else None,
        n_a=len(cell.samples) if change == "removed" else 0,
        n_b=len(cell.samples) if change == "added" else 0,
        note=note,
    )


def _compare_cell(
    a: CellRecord, b: CellRecord | None, threshold: float, spread: ProcessSpread | None
) -> CompareRow:
    if b is None:
        return _one_sided(a, "removed")
    if not (_usable(a) and _usable(b)):
        broken = [f"{name}: {c.status}" for name, c in (("A", a), ("B", b)) if not _usable(c)]
        return CompareRow(
            **a.key_fields(),
            change="failed",
            median_a_s=a.metrics.get("median_s") if _usable(a) else None,
            median_b_s=b.metrics.get("median_s") if _usable(b) else None,
            n_a=len(a.samples),
            n_b=len(b.samples),
            note="not comparable (" + ", ".join(broken) + ")",
        )
    ratio = ratio_of_medians_grouped(b.sample_groups(), a.sample_groups(), spread=spread)
    p_value = mann_whitney_p(a.samples, b.samples)
    row = CompareRow(
        **a.key_fields(),
        change="unchanged",
        median_a_s=statistics.median(a.samples),
        median_b_s=statistics.median(b.samples),
        ratio=ratio.ratio,
        ci_low=ratio.ci_low,
        ci_high=ratio.ci_high,
        p_value=p_value,
        n_a=len(a.samples),
        n_b=len(b.samples),
    )
    factor = 1.0 + threshold
    change = "unchanged"
    if row.significant and ratio.ratio > factor:
        change = "regressed"
    elif row.significant and ratio.ratio * factor < 1.0:
        change = "improved"
    note = "" if change != "unchanged" else _why_unchanged(row, factor)
    return replace(row, change=change, note=note)


def _why_unchanged(row: CompareRow, factor: float) -> str:
    assert row.ratio is not None
    if not row.significant and (row.ratio > factor or row.ratio * factor < 1.0):
        return "change beyond the threshold but not significant"
    return ""


def environment_warnings(run_a: RunRecord, run_b: RunRecord) -> list[str]:
    """What differs between the runs' machines, library versions and settings."""
    warnings = []
    env_a, env_b = run_a.environment, run_b.environment
    machine = [
        f"{key} {_show(env_a.get(key))} → {_show(env_b.get(key))}"
        for key in MACHINE_KEYS
        if env_a.get(key) != env_b.get(key)
    ]
    if machine:
        warnings.append("the runs come from different machines: " + "; ".join(machine))
    versions_a, versions_b = env_a.get("versions") or {}, env_b.get("versions") or {}
    libraries = [
        f"{name} {versions_a.get(name, '—')} → {versions_b.get(name, '—')}"
        for name in sorted(set(versions_a) | set(versions_b))
        if versions_a.get(name) != versions_b.get(name)
    ]
    if env_a.get("python") != env_b.get("python"):
        libraries.insert(0, f"Python {env_a.get('python')} → {env_b.get('python')}")
    if libraries:
        warnings.append("the runs use different library versions: " + "; ".join(libraries))
    settings = [
        f"{key} {_show(run_a.settings.get(key))} → {_show(run_b.settings.get(key))}"
        for key in SETTING_KEYS
        if run_a.settings.get(key) != run_b.settings.get(key)
    ]
    if settings:
        warnings.append("the runs use different settings: " + "; ".join(settings))
    for label, run in (("A", run_a), ("B", run_b)):
        if run.status != "finished":
            warnings.append(f"run {label} ({run.id}) is {run.status}: some cells may be missing")
    return warnings


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# --- rendering -------------------------------------------------------------------------------

COLUMNS = ("cell", "A ms", "B ms", "B/A", "95% CI", "p", "change")
_STYLE = {"regressed": "red", "improved": "green", "failed": "yellow"}


def _label(row: CompareRow) -> str:
    return f"{row.workload}/{row.size} {row.mode} {row.phase}"


def _cells(row: CompareRow) -> list[str]:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value * 1e3:.4g}"

    ratio = "—" if row.ratio is None else f"{row.ratio:.3f}"
    ci = "—" if row.ci_low is None else f"{row.ci_low:.3f}–{row.ci_high:.3f}"
    p = "—" if row.p_value is None else _format_p(row.p_value)
    return [_label(row), ms(row.median_a_s), ms(row.median_b_s), ratio, ci, p, row.change]


def _format_p(p: float) -> str:
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def _headline(comparison: Comparison) -> str:
    counts = comparison.counts()
    shown = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    return (
        f"run {comparison.run_b.id} vs run {comparison.run_a.id} (B/A, above 1: slower): "
        f"{shown or 'no cells'}; threshold {comparison.threshold:.0%}, significant when "
        f"p < {SIGNIFICANCE} and the 95% CI of B/A excludes 1"
    )


def print_comparison(comparison: Comparison, console: Console) -> None:
    """The comparison as a rich table, warnings first and in bold, notes after it."""
    for warning in comparison.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}")
    table = Table(title=f"run {comparison.run_a.id} (A) → run {comparison.run_b.id} (B)")
    for column in COLUMNS:
        table.add_column(column, no_wrap=column != "cell")
    for row in comparison.rows:
        cells = [escape(text) for text in _cells(row)]
        style = _STYLE.get(row.change)
        if style:
            cells[-1] = f"[{style}]{cells[-1]}[/{style}]"
        table.add_row(*cells)
    console.print(table)
    for row in comparison.rows:
        if row.note:
            console.print(f"[dim]{escape(_label(row))}: {escape(row.note)}[/dim]")
    console.print(escape(_headline(comparison)))


def render_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: warnings on top, then one table row per cell."""
    a, b = comparison.run_a, comparison.run_b
    lines = [f"# twinbench: run {b.id} compared with run {a.id}", ""]
    if comparison.warnings:
        lines += [f"> **Warning:** {_md(w)}" for w in comparison.warnings] + [""]
    lines += [
        f"- A: run {a.id}, started {a.started_at} ({a.status})",
        f"- B: run {b.id}, started {b.started_at} ({b.status})",
        f"- {_md(_headline(comparison))}",
        "",
        "| " + " | ".join((*COLUMNS, "note")) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    lines += [
        "| " + " | ".join(_md(text) for text in (*_cells(row), row.note)) + " |"
        for row in comparison.rows
    ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return md_cell(text)  # names and notes: pipes, newlines and HTML escaped
