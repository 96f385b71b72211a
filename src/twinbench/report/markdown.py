"""The run as a Markdown file, written beside the database."""

from __future__ import annotations

from pathlib import Path

from twinbench.report.summary import (
    CELL_COLUMNS,
    NOTE_LEGEND,
    RunSummary,
    environment_line,
    settings_line,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def render(summary: RunSummary) -> str:
    run = summary.run
    lines = [
        f"# twinbench run {run.id}",
        "",
        f"Started {run.started_at}, status **{run.status}**.",
        "",
        f"- Machine: {environment_line(run)}",
        f"- Settings: {settings_line(run)}",
        "",
    ]
    lines += ["## Verdicts", "", "Ratios are PyTorch time / JAX time (above 1: JAX is faster).", ""]
    lines += _table(
        ("workload", "size", "phase", "comparison", "verdict"),
        [[v.workload, v.size, v.phase, v.comparison, v.text] for v in summary.verdicts],
    )
    lines += ["", "## Cells", ""]
    lines += _table(CELL_COLUMNS, [[row.get(c, "") for c in CELL_COLUMNS] for row in summary.rows])
    lines += ["", NOTE_LEGEND + ".", "", "## Parity", ""]
    lines += _table(
        ("workload", "size", "result"),
        [[p["workload"], p["size"], "pass" if p["passed"] else "FAIL"] for p in summary.parity],
    )
    if summary.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in summary.notes]
    return "\n".join(lines) + "\n"


def write(summary: RunSummary, path: Path) -> Path:
    path.write_text(render(summary))
    return path
