"""The run as a Markdown file, written beside the database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote  # plot links: a folder named "a (b)" must not end the link

from twinbench.report.recommend import recommend
from twinbench.report.summary import (
    CELL_COLUMNS,
    NOTE_LEGEND,
    RunSummary,
    header_lines,
    suite_section,
)
from twinbench.report.text import fmt_seconds, fmt_steps, md_cell
from twinbench.report.text import md_table as _table
from twinbench.store import CellRecord

# Every text that comes from outside (workload names, errors, notes) goes through md_cell, in
# tables, headings and lists alike: `<script>` and newlines in a name must not reach the page.
_cell = md_cell


def _sections(summary: RunSummary, images: dict[str, list[str]]) -> list[str]:
    from twinbench.report.html import sections  # the same grouping as the HTML page

    lines: list[str] = []
    for s in sections(summary, with_plots=False):
        lines += ["", f"### {md_cell(s.title)}", ""]
        lines += [f"![{kind}]({path})" for kind, path in _images_for(images, s.anchor)]
        if s.sweep:
            lines += [""] + _table(
                ("mode", "batch sizes", "growth exponent", "best samples/s"),
                [
                    [
                        sr.mode,
                        ", ".join(map(str, sr.batch_sizes)),
                        f"{sr.exponent:.2f}" if sr.exponent is not None else "—",
                        f"{max(sr.samples_per_s):,.0f}",
                    ]
                    for sr in s.sweep
                ],
            )
        if s.break_evens:
            lines += ["", "Compile time against steady-state step:", ""]
            lines += _table(
                ("size", "compiled mode", "against", "compile", "break-even (steps)"),
                [
                    [
                        size,
                        b.compiled_mode,
                        b.eager_mode + (" (across frameworks)" if b.across_frameworks else ""),
                        fmt_seconds(b.compile_s),
                        fmt_steps(b.steps),
                    ]
                    for size, b in s.break_evens
                ],
            )
        for f in s.failures:
            first = (f.error or "no error text").strip().splitlines()
            head = _cell(f"{f.mode} {f.size}")
            lines += ["", f"- {head} **{_cell(f.status)}**: {_cell(first[0] if first else '')}"]
        if s.parity is None:
            lines += ["", "No parity record for this workload in this run."]
        else:
            verdict = "twins agree" if s.parity.passed else "parity FAILED"
            extra = f" — {_cell(s.parity.divergence)}" if s.parity.divergence else ""
            lines += ["", f"Parity: **{verdict}**{extra}"]
            if s.parity.error:
                lines += ["", f"> {_cell(s.parity.error)}"]
            if s.parity.checks:
                lines += [""] + _table(
                    ("check", "result", "max abs", "max rel", "atol", "rtol"),
                    [
                        [
                            str(c.get("name", "?")),
                            "pass" if c.get("passed") else "FAIL",
                            _num(c.get("max_abs")),
                            _num(c.get("max_rel")),
                            _num(c.get("atol")),
                            _num(c.get("rtol")),
                        ]
                        for c in s.parity.checks
                    ],
                )
    return lines


def _recommendations(summary: RunSummary) -> list[str]:
    """The recommendations section (a run's or its suite view's); nothing when there are none."""
    recommendations = recommend(summary)
    if not recommendations:
        return []
    return [
        "",
        "## Recommendations",
        "",
        *(f"- **{_cell(r.kind)}** — {_cell(r.subject)}: {_cell(r.text)}" for r in recommendations),
    ]


def _num(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "—"


def _images_for(images: dict[str, list[str]], anchor: str) -> list[tuple[str, str]]:
    return [(f"{anchor} {i}", path) for i, path in enumerate(images.get(anchor, []))]


def render(summary: RunSummary, images: dict[str, list[str]] | None = None) -> str:
    """The report as Markdown; ``images`` maps a section anchor to plot paths to link."""
    from twinbench.report.html import verdict_rows

    run = summary.run
    lines = [
        f"# twinbench run {run.id}",
        "",
        f"Started {_cell(run.started_at)}, status **{_cell(run.status)}**.",
        "",
        *(f"- {label}: {_cell(text)}" for label, text in header_lines(run)),
        "",
    ]
    suite = suite_section(run)
    if suite is not None:
        figures = [f"![{name}]({path})" for name, path in _images_for(images or {}, "suite")]
        return "\n".join(
            [
                *lines,
                f"## {suite.title[0].upper()}{suite.title[1:]}",
                "",
                suite.markdown,
                *figures,
                *_recommendations(summary),
                "",
            ]
        )
    lines += ["## Summary", ""]
    lines += _table(
        ("workload", "size", "phase", "faster", "by", "95% rerun interval", "time to first step"),
        [
            [
                v.workload,
                v.size,
                v.phase,
                v.winner or ("no significant difference" if v.ci else "—"),
                v.factor,
                v.ci,
                v.first_step,
            ]
            for v in verdict_rows(summary.verdicts)
        ],
    )
    lines += _recommendations(summary)
    lines += [
        "",
        "## Verdicts",
        "",
        "Ratios are PyTorch time / JAX time (above 1: JAX is faster).",
        "",
    ]
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
    lines += ["", "## Per workload"] + _sections(summary, images or {})
    if summary.notes:
        lines += ["", "## Notes", ""] + [f"- {_cell(note)}" for note in summary.notes]
    return "\n".join(lines) + "\n"


def write(summary: RunSummary, path: Path) -> Path:
    """Write the Markdown report and its plots (SVG files in ``<name>-plots/`` beside it)."""
    from twinbench.report import plots
    from twinbench.report.html import sections
    from twinbench.report.summary import ok_cells, peak_flops

    path = Path(path)
    folder = path.with_name(f"{path.stem}-plots")
    images: dict[str, list[str]] = {}
    peak = peak_flops(summary.run)
    by_key: dict[tuple[str, str, str], list[CellRecord]] = {}
    for cell in summary.cells:
        by_key.setdefault((cell.workload, cell.size, cell.phase), []).append(cell)
    suite = suite_section(summary.run)
    for name, figure in suite.figures if suite is not None else []:
        folder.mkdir(parents=True, exist_ok=True)
        target = plots.save(figure, folder / f"suite-{name}.svg")
        images.setdefault("suite", []).append(quote(f"{folder.name}/{target.name}"))
    for s in sections(summary, with_plots=False):
        figures = []
        if s.sweep:
            figures.append(("sweep", plots.sweep_figure(s.sweep)))
        else:
            key = next((k for k in by_key if _anchor_of(k) == s.anchor), None)
            ok = list(ok_cells(by_key[key]).values()) if key else []
            if ok:
                figures.append(("steps", plots.workload_figure(ok, peak)))
        if s.parity is not None:
            curves = plots.parity_figure(s.parity.checks)
            if curves is not None:
                figures.append(("parity", curves))
        for name, figure in figures:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{s.anchor}-{name}.svg"
            plots.save(figure, target)
            images.setdefault(s.anchor, []).append(quote(f"{folder.name}/{target.name}"))
    path.write_text(render(summary, images), encoding="utf-8")
    return path


def _anchor_of(key: tuple[str, str, str]) -> str:
    from twinbench.report.html import anchor

    return anchor(*key)
