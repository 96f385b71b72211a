"""``report`` and ``compare``: stored runs rendered again, and two runs compared."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from twinbench.cli.base import DEFAULT_OUT, app, console, err_console
from twinbench.cli.options import Results, TensorBoardDir, option
from twinbench.errors import TwinbenchError

if TYPE_CHECKING:
    from twinbench.report.summary import RunSummary


REPORT_FORMATS = ("md", "html", "json", "csv", "terminal")


_EXTENSIONS = {"md": "md", "html": "html", "json": "json", "csv": "csv"}


_LABELS = {
    "md": "Markdown report",
    "html": "HTML report",
    "json": "JSON export",
    "csv": "CSV export",
}


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="A run id, or latest.")] = "latest",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="md, html, json, csv or terminal.")
    ] = "md",
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Output file (default: report-run<ID>.<ext> beside the database; - for stdout).",
        ),
    ] = None,
    results: Results = DEFAULT_OUT,
    tensorboard: TensorBoardDir = None,
) -> None:
    """Show a stored run again and write it as Markdown, HTML, JSON or CSV."""
    if fmt not in REPORT_FORMATS:
        raise TwinbenchError(f"unknown format '{fmt}'; valid: {', '.join(REPORT_FORMATS)}")
    if fmt == "terminal" and out is not None:
        raise TwinbenchError("--format terminal prints only; give another --format to use --out")
    to_stdout = out == "-"
    summary = _load_summary(results, _parse_run_id(run_id))
    if not to_stdout:
        from twinbench.report.terminal import print_summary

        print_summary(summary, console)
    if fmt != "terminal":
        target = "-" if to_stdout else Path(out or results / _default_name(summary, fmt))
        _write_document(summary, fmt, target)
    if tensorboard is not None:
        _write_tensorboard(summary, tensorboard, stdout_is_document=to_stdout)


def _parse_run_id(text: str) -> int | None:
    if text == "latest":
        return None
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() and "٣".isdigit() too
        raise TwinbenchError(f"run id '{text}' is invalid; give a number or 'latest'")
    return int(text)


def _require_database(results: Path) -> None:
    """Refuse, before opening anything, a results directory that holds no database."""
    from twinbench.store import DB_NAME

    if not results.is_dir():
        raise TwinbenchError(
            f"no results directory {results}; run `twinbench run` first, or give --results DIR"
        )
    if not (results / DB_NAME).is_file():
        raise TwinbenchError(f"no twinbench results database ({DB_NAME}) in {results}")


def _load_summary(results: Path, run_id: int | None) -> RunSummary:
    from twinbench.report.summary import load_summary

    _require_database(results)
    return load_summary(results, run_id)


def _default_name(summary: RunSummary, fmt: str) -> str:
    return f"report-run{summary.run.id}.{_EXTENSIONS[fmt]}"


def _write_document(summary: RunSummary, fmt: str, target: Path | str) -> None:
    """Write the run in one format to a file, or to stdout when target is "-"."""
    try:
        written = _write_format(summary, fmt, target)
    except OSError as exc:
        raise TwinbenchError(f"cannot write the {fmt} report to {target}: {exc}") from exc
    if written is not None:
        console.print(f"{_LABELS[fmt]}: {written}", highlight=False, soft_wrap=True, markup=False)


def _write_format(summary: RunSummary, fmt: str, target: Path | str) -> Path | None:
    if fmt in ("json", "csv"):
        from twinbench.report import export

        return (export.to_json if fmt == "json" else export.to_csv)(summary, target)
    from twinbench.report import html, markdown

    document = html if fmt == "html" else markdown
    if target == "-":
        sys.stdout.write(document.render(summary))
        return None
    return Path(document.write(summary, Path(target)))


def _write_tensorboard(
    summary: RunSummary, log_dir: Path, *, stdout_is_document: bool = False
) -> None:
    from twinbench.report.tensorboard import write_parity_curves

    try:
        folders = write_parity_curves(summary, log_dir)
    except OSError as exc:
        raise TwinbenchError(f"cannot write TensorBoard logs to {log_dir}: {exc}") from exc
    where = err_console if stdout_is_document else console
    if folders:
        groups = ", ".join(dict.fromkeys(folder.parent.name for folder in folders))
        where.print(
            f"TensorBoard: parity loss curves of {groups} in {log_dir} "
            f"(view with: tensorboard --logdir {log_dir})",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    else:
        where.print(f"TensorBoard: run {summary.run.id} stored no loss curves; nothing written")


def write_run_reports(out: Path, run_id: int | None, *, tensorboard: Path | None = None) -> None:
    """After run and sweep: the terminal summary, then the Markdown and HTML reports."""
    from twinbench.report.summary import load_summary
    from twinbench.report.terminal import print_summary

    summary = load_summary(out, run_id)
    print_summary(summary, console)
    for fmt in ("md", "html"):
        _write_document(summary, fmt, out / _default_name(summary, fmt))
    if tensorboard is not None:
        _write_tensorboard(summary, tensorboard)


CompareFormat = Annotated[str, typer.Option("--format", "-f", help="terminal, md or json.")]


COMPARE_FORMATS = ("terminal", "md", "json")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run id (or latest).")],
    run_b: Annotated[str, typer.Argument(help="The run compared with it (or latest).")],
    results: Results = DEFAULT_OUT,
    threshold: Annotated[
        float,
        option("Percent change below which a cell counts as unchanged (finite, ≥ 0)."),
    ] = 10.0,
    fmt: CompareFormat = "terminal",
    fail_on_regression: Annotated[
        float | None,
        option(
            "Exit 1 if a cell is significantly slower in RUN_B by more than this percent "
            "(for CI; finite, ≥ 0).",
        ),
    ] = None,
) -> None:
    """Which cells got faster or slower from RUN_A to RUN_B, and whether that is significant.

    A cell is improved or regressed only when the change exceeds --threshold and is
    significant (Mann-Whitney p < 0.05 and the bootstrap CI of the ratio excludes 1).
    """
    from twinbench.report.compare import compare_runs, print_comparison, render_markdown
    from twinbench.store import DB_NAME, ResultStore
    from twinbench.validation import in_range

    if fmt not in COMPARE_FORMATS:
        raise TwinbenchError(f"unknown format '{fmt}'; valid: {', '.join(COMPARE_FORMATS)}")
    in_range("--threshold", threshold, low=0)  # percent: finite, so a change can exceed it
    if fail_on_regression is not None:
        in_range("--fail-on-regression", fail_on_regression, low=0)
    id_a, id_b = _parse_run_id(run_a), _parse_run_id(run_b)
    _require_database(results)
    with ResultStore(results / DB_NAME, read_only=True) as store:
        latest = store.latest_run_id()
        if latest is None:
            raise TwinbenchError(f"no runs in {results / DB_NAME} yet; run `twinbench run`")
        comparison = compare_runs(
            store,
            latest if id_a is None else id_a,
            latest if id_b is None else id_b,
            threshold=threshold / 100,
        )
    if fmt == "json":
        from twinbench.report.export import json_text

        print(json_text(comparison.to_dict()))
    elif fmt == "md":
        sys.stdout.write(render_markdown(comparison))
    else:
        print_comparison(comparison, console)
    if fail_on_regression is not None:
        regressed = comparison.regressions(fail_on_regression / 100)
        if regressed:
            names = ", ".join(
                f"{r.workload}/{r.size} {r.mode} {r.phase} "
                + ("failed in B" if r.broke_in_b else f"×{r.ratio:.2f}")
                for r in regressed
            )
            err_console.print(
                f"[red]regression:[/red] {len(regressed)} cells slower by more than "
                f"{fail_on_regression:g}% or failing in RUN_B: {escape(names)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
