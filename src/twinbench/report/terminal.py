"""The run's tables in the terminal (rich): one table per workload, size and phase."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twinbench.report.summary import (
    CELL_COLUMNS,
    NOTE_LEGEND,
    RunSummary,
    environment_line,
    settings_line,
    suite_section,
)

_GROUP = ("workload", "size", "phase")
_COLUMNS = tuple(c for c in CELL_COLUMNS if c not in _GROUP)


def print_summary(summary: RunSummary, console: Console) -> None:
    run = summary.run
    console.print(f"[bold]twinbench run {run.id}[/bold] ({run.status})")
    suite = suite_section(run)
    if suite is not None:
        console.print(suite.text, markup=False, highlight=False, soft_wrap=True)
        return
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in summary.rows:
        groups.setdefault(tuple(row[k] for k in _GROUP), []).append(row)
    for key, rows in groups.items():
        table = Table(*_COLUMNS, title=" / ".join(key), title_justify="left", min_width=60)
        for row in rows:
            table.add_row(*(escape(row.get(column, "")) for column in _COLUMNS))
        console.print(table)
    verdicts = Table("workload", "size", "phase", "comparison", "verdict", title="verdicts")
    for v in summary.verdicts:
        verdicts.add_row(v.workload, v.size, v.phase, v.comparison, escape(v.text))
    console.print(verdicts)
    console.print(f"[dim]{escape(environment_line(run))}[/dim]")
    console.print(f"[dim]{escape(settings_line(run))}[/dim]")
    console.print(f"[dim]{escape(NOTE_LEGEND)}[/dim]")
    for note in summary.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
