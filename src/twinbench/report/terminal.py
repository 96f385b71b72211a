"""The run's tables in the terminal (rich): one table per workload, size and phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.report.summary import (
    CELL_COLUMNS,
    NOTE_LEGEND,
    RunSummary,
    header_lines,
    suite_section,
)

if TYPE_CHECKING:
    from twinbench.parity import ParityReport
    from twinbench.spec import Workload

_GROUP = ("workload", "size", "phase")
_COLUMNS = tuple(c for c in CELL_COLUMNS if c not in _GROUP)


def print_summary(summary: RunSummary, console: Console) -> None:
    run = summary.run
    console.print(f"[bold]twinbench run {run.id}[/bold] ({escape(run.status)})")
    suite = suite_section(run)
    if suite is not None:
        console.print(suite.text, markup=False, highlight=False, soft_wrap=True)
        return
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in summary.rows:
        groups.setdefault(tuple(row[k] for k in _GROUP), []).append(row)
    for key, rows in groups.items():
        table = Table(*_COLUMNS, title=escape(" / ".join(key)), title_justify="left", min_width=60)
        for row in rows:
            table.add_row(*(escape(row.get(column, "")) for column in _COLUMNS))
        console.print(table)
    verdicts = Table("workload", "size", "phase", "comparison", "verdict", title="verdicts")
    for v in summary.verdicts:
        verdicts.add_row(*(escape(t) for t in (v.workload, v.size, v.phase, v.comparison, v.text)))
    console.print(verdicts)
    for label, text in header_lines(run):  # machine and settings read as what they are
        shown = f"time: {text}" if label == "Time" else text
        console.print(f"[dim]{escape(shown)}[/dim]")
    console.print(f"[dim]{escape(NOTE_LEGEND)}[/dim]")
    for note in summary.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


def print_workloads(workloads: list[tuple[Workload, dict[str, int]]], console: Console) -> None:
    """``twinbench list``: each workload with its sizes, parameter counts and description."""
    table = Table("workload", "sizes (parameters)", "description", title="twinbench workloads")
    for workload, counts in workloads:
        sizes = ", ".join(f"{name} ({counts[name]:,})" for name in workload.sizes)
        table.add_row(escape(workload.name), escape(sizes), escape(workload.description))
    console.print(table)


def print_parity(report: ParityReport, console: Console) -> None:
    """``twinbench parity``: every check of every workload, then the failures in words."""
    table = Table(
        "workload",
        "size",
        "check",
        "max abs",
        "max rel",
        "atol / rtol",
        "result",
        title="parity: PyTorch twin vs JAX twin",
    )
    for result in report.results:
        workload, size = escape(result.workload), escape(result.size)
        if result.error:
            table.add_row(workload, size, "—", "", "", "", "[red]error[/red]")
        for check in result.checks:
            verdict = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
            table.add_row(
                workload,
                size,
                escape(check.name),
                f"{check.max_abs:.2e}",
                f"{check.max_rel:.2e}",
                f"{check.atol:.0e} / {check.rtol:.0e}",
                verdict,
            )
    console.print(table)
    for result in report.results:
        for line in result.failures():
            console.print(
                f"[red]{escape(result.workload)} ({escape(result.size)}):[/red] {escape(line)}"
            )
    console.print("[green]all twins agree[/green]" if report.passed else "[red]parity failed[/red]")
