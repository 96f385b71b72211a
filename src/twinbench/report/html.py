"""The run as one self-contained HTML page: tables, inline SVG plots, twin sources, advice.

Nothing on the page is fetched: styles are inline, plots are inline SVG, fonts are the reader's
system fonts. Every string that comes from outside twinbench's code (workload names, error texts,
twin sources) is escaped by jinja2's autoescape; the only unescaped fragments are the SVG that
matplotlib writes (which escapes its own text) and the HTML pygments writes (which escapes the
source it highlights).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from twinbench.report import plots
from twinbench.report.memory import is_memory
from twinbench.report.recommend import Recommendation, recommend
from twinbench.report.summary import (
    CELL_COLUMNS,
    NOTE_LEGEND,
    BreakEven,
    RunSummary,
    SweepSeries,
    base_size,
    break_evens,
    environment_line,
    groups,
    ok_cells,
    parity_record,
    peak_flops,
    suite_section,
    sweep_batch_size,
    sweep_series,
)
from twinbench.report.text import fmt_seconds, fmt_steps
from twinbench.report.verdict import Verdict
from twinbench.store import CellRecord

_FORMATTER = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("twinbench.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


_ENV.filters["seconds"] = fmt_seconds
_ENV.filters["steps"] = fmt_steps


@dataclass
class VerdictRow:
    workload: str
    size: str
    phase: str
    winner: str  # a mode, or "" when there is no significant difference or no verdict
    factor: str  # "1.83×" (how much faster the winner is), or ""
    ci: str  # "1.79–1.86×"
    text: str
    first_step: str  # the time-to-first-step verdict
    significant: bool


@dataclass
class ParityView:
    passed: bool
    error: str | None
    checks: list[dict[str, Any]]
    divergence: str | None
    svg: Markup | None


@dataclass
class Section:
    """One workload at one size and phase, or one batch sweep."""

    anchor: str
    title: str
    rows: list[dict[str, str]]
    failures: list[CellRecord]
    svg: Markup | None
    break_evens: list[tuple[str, BreakEven]]  # (size label, break-even)
    parity: ParityView | None
    sweep: list[SweepSeries] = field(default_factory=list)


def verdict_rows(verdicts: list[Verdict]) -> list[VerdictRow]:
    first_step = {
        (v.workload, v.size, v.phase): v.text
        for v in verdicts
        if v.comparison == "time to first step"
    }
    rows = []
    for v in verdicts:
        if v.comparison != "best vs best":
            continue
        key = (v.workload, v.size, v.phase)
        winner = factor = ci = ""
        r = v.ratio
        if r is not None and r.significant:
            if r.ratio > 1:
                winner, factor, ci = (
                    v.jax_mode or "",
                    f"{r.ratio:.2f}×",
                    f"{r.ci_low:.2f}–{r.ci_high:.2f}×",
                )
            else:
                winner = v.torch_mode or ""
                factor, ci = f"{1 / r.ratio:.2f}×", f"{1 / r.ci_high:.2f}–{1 / r.ci_low:.2f}×"
        elif r is not None:
            ci = f"{r.ci_low:.2f}–{r.ci_high:.2f}"
        rows.append(
            VerdictRow(
                *key,
                winner=winner,
                factor=factor,
                ci=ci,
                text=v.text,
                first_step=first_step.get(key, "—"),
                significant=bool(r is not None and r.significant),
            )
        )
    seen = {(r.workload, r.size, r.phase) for r in rows}
    for key, text in first_step.items():  # groups whose best-vs-best verdict is missing
        if key not in seen:
            rows.append(VerdictRow(*key, "", "", "", "no step-time verdict", text, False))
    return rows


def _parity_view(record: dict[str, Any] | None, *, with_plot: bool = True) -> ParityView | None:
    if record is None:
        return None
    summary = record.get("summary") or {}
    checks = [c for c in summary.get("checks") or [] if isinstance(c, dict)]
    divergence = summary.get("divergence")
    described = None
    if isinstance(divergence, dict) and divergence.get("layer"):
        described = (
            f"first divergent layer: {divergence['layer']}"
            + (f" (after {divergence['previous']})" if divergence.get("previous") else "")
            + (f", max abs diff {divergence['max_abs']:.3g}" if divergence.get("max_abs") else "")
        )
    figure = plots.parity_figure(checks) if with_plot else None
    return ParityView(
        passed=bool(record["passed"]),
        error=summary.get("error"),
        checks=checks,
        divergence=described,
        svg=Markup(plots.svg(figure)) if figure is not None else None,
    )


ANCHOR_LENGTH = 100  # characters: plot files are named after anchors, and names must fit


def anchor(*parts: str) -> str:
    """An HTML id (and plot file stem) for a section: ASCII letters, digits, ``_`` and ``-``.

    A long one is cut and given a short hash of the whole, so that every file name derived
    from it fits the file system (255 bytes) and two long names still differ.
    """
    text = "w-" + "-".join(
        "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in p) for p in parts
    )
    if len(text) <= ANCHOR_LENGTH:
        return text
    digest = hashlib.sha1("\0".join(parts).encode()).hexdigest()[:10]
    return f"{text[: ANCHOR_LENGTH - 11]}-{digest}"


def sections(summary: RunSummary, *, with_plots: bool = True) -> list[Section]:
    """The per-workload sections, in the order the run measured them; sweeps one section each."""
    peak = peak_flops(summary.run)
    rows_by_key: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in summary.rows:
        rows_by_key.setdefault((row["workload"], row["size"], row["phase"]), []).append(row)
    out: list[Section] = []
    sweeps: dict[tuple[str, str, str], Section] = {}
    all_series = sweep_series(summary.cells)
    for key, cells in groups(summary).items():
        workload, size, phase = key
        failures = [c for c in cells if c.status != "ok"]
        is_sweep = any(sweep_batch_size(c) is not None for c in cells)
        if is_sweep:
            base = base_size(size)
            section = sweeps.get((workload, base, phase))
            if section is None:
                series = [
                    s
                    for s in all_series
                    if (s.workload, base_size(s.base), s.phase) == (workload, base, phase)
                ]
                svg = (
                    Markup(plots.svg(plots.sweep_figure(series))) if series and with_plots else None
                )
                section = Section(
                    anchor=anchor(workload, base, phase, "sweep"),
                    title=f"{workload} / {base} / {phase} — batch-size sweep",
                    rows=[],
                    failures=[],
                    svg=svg,
                    break_evens=[],
                    parity=_parity_view(
                        parity_record(summary, workload, base), with_plot=with_plots
                    ),
                    sweep=series,
                )
                sweeps[(workload, base, phase)] = section
                out.append(section)
            section.rows += rows_by_key.get(key, [])
            section.failures += failures
            section.break_evens += [(size, b) for b in break_evens(cells)]
            continue
        ok = list(ok_cells(cells).values())
        svg = Markup(plots.svg(plots.workload_figure(ok, peak))) if ok and with_plots else None
        out.append(
            Section(
                anchor=anchor(workload, size, phase),
                title=f"{workload} / {size} / {phase}",
                rows=rows_by_key.get(key, []),
                failures=failures,
                svg=svg,
                break_evens=[(size, b) for b in break_evens(cells)],
                parity=_parity_view(parity_record(summary, workload, size), with_plot=with_plots),
            )
        )
    return out


def environment_rows(summary: RunSummary) -> list[tuple[str, str]]:
    """(label, value) pairs describing the machine and libraries."""
    e = summary.run.environment
    versions = e.get("versions") or {}
    rows = [
        ("CPU", f"{e.get('cpu_model', '?')}"),
        (
            "cores",
            f"{e.get('usable_cores', '?')} usable ({e.get('cpu_cores_physical', '?')} physical, "
            f"{e.get('cpu_cores_logical', '?')} logical)",
        ),
        ("GPU", ", ".join(e.get("gpus") or []) or "none"),
    ]
    if e.get("memory_bytes"):
        rows.append(("memory", f"{e['memory_bytes'] / 2**30:.1f} GiB"))
    rows += [("OS", str(e.get("os", "?"))), ("Python", str(e.get("python", "?")))]
    rows += [(name, str(version)) for name, version in versions.items()]
    if e.get("git_commit"):
        rows.append(("git commit", str(e["git_commit"])[:12]))
    peaks = summary.run.info.get("peak_flops") or {}
    for framework, value in peaks.items():
        shown = f"{value / 1e9:,.1f} GFLOP/s" if isinstance(value, int | float) else str(value)
        rows.append((f"peak matmul ({framework})", shown))
    return rows


def settings_rows(summary: RunSummary) -> list[tuple[str, str]]:
    """(label, value) pairs: the run's fairness settings, the same for both frameworks."""
    s = summary.run.settings
    info = summary.run.info
    rows = [
        ("threads", f"{s.get('threads', '?')} for both frameworks"),
        ("dtype", str(s.get("dtype", "?"))),
        ("device", str(s.get("device", "?"))),
        (
            "matmul precision",
            (info.get("compile_options") or {}).get("fp32_matmul_precision")
            or ("TF32 allowed" if s.get("allow_tf32") else "TF32 off on both sides"),
        ),
        ("budget", f"{s.get('budget', '?')} s of timing per cell"),
        ("torch.compile mode", str(s.get("torch_compile_mode", "?"))),
        ("seed", str(s.get("seed", "?"))),
        ("parity steps", str(s.get("parity_steps", "?"))),
        ("modes", ", ".join(s.get("modes") or [])),
        ("phases", ", ".join(s.get("phases") or [])),
    ]
    for mode, text in (info.get("compile_options") or {}).items():
        if mode != "fp32_matmul_precision":
            rows.append((f"{mode}", str(text)))
    for key, label in (
        ("thread_environment", "thread variables"),
        ("allocator_environment", "allocator variables"),
    ):
        if variables := info.get(key) or {}:
            rows.append((label, " ".join(f"{k}={v}" for k, v in variables.items())))
    return rows


def sources(summary: RunSummary) -> list[dict[str, Any]]:
    """Each workload's twin files, highlighted, with their line counts."""
    out = []
    for workload, files in (summary.run.info.get("twin_sources") or {}).items():
        twins = []
        for framework, label in (("torch", "PyTorch twin"), ("jax", "JAX twin")):
            text = files.get(framework) if isinstance(files, dict) else None
            if text is None:
                continue
            twins.append(
                {
                    "label": label,
                    "lines": len(text.splitlines()),
                    "html": Markup(highlight(text, PythonLexer(), _FORMATTER)),
                }
            )
        if twins:
            out.append({"workload": workload, "anchor": anchor("src", workload), "twins": twins})
    return out


def context(summary: RunSummary) -> dict[str, Any]:
    """Everything the template shows, computed from the summary alone."""
    recommendations: list[Recommendation] = recommend(summary)
    failed = [c for c in summary.cells if c.status != "ok"]
    return {
        "run": summary.run,
        "environment": environment_rows(summary),
        "settings": settings_rows(summary),
        "verdicts": verdict_rows(summary.verdicts),
        "all_verdicts": summary.verdicts,
        "memory_verdicts": [v for v in summary.verdicts if is_memory(v)],
        "recommendations": recommendations,
        "sections": sections(summary),
        "sources": sources(summary),
        "failed": failed,
        "notes": summary.notes,
        "columns": [c for c in CELL_COLUMNS if c not in ("workload", "size", "phase")],
        "legend": NOTE_LEGEND,
        "n_ok": sum(1 for c in summary.cells if c.status == "ok"),
        "n_cells": len(summary.cells),
        "highlight_css": Markup(_FORMATTER.get_style_defs(".hl")),
    }


_SUITE_PAGE = _ENV.from_string(
    "<!doctype html><html><head><meta charset='utf-8'><title>twinbench run {{ id }}</title>"
    "<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;}"
    "pre{background:#f6f8fa;padding:1rem;overflow-x:auto;}"
    ".recs li{margin:.4rem 0;}.recs .kind{font-weight:700;text-transform:uppercase;"
    "font-size:.8em;color:#555;}</style></head><body>"
    "<h1>twinbench run {{ id }}: {{ title }}</h1><p>{{ machine }}</p>"
    "<pre>{{ text }}</pre>{% for figure in figures %}{{ figure }}{% endfor %}"
    "{% if recommendations %}<h2 id='recommendations'>Recommendations</h2>"
    "<p>Derived from this run's numbers only; each line quotes the measurement it follows "
    "from.</p><ul class='recs'>{% for r in recommendations %}<li class='{{ r.kind }}'>"
    "<span class='kind'>{{ r.kind | replace('-', ' ') }}</span> "
    "<span class='subject'>{{ r.subject }}</span>: {{ r.text }}</li>{% endfor %}</ul>"
    "{% endif %}</body></html>"
)


def render(summary: RunSummary) -> str:
    """The whole report as one HTML document."""
    suite = suite_section(summary.run)
    if suite is not None:  # a suite run has no cells: show its stored tables as text
        return _SUITE_PAGE.render(
            id=summary.run.id,
            title=suite.title,
            text=suite.markdown,
            machine=environment_line(summary.run),
            figures=[Markup(plots.svg(f)) for _, f in suite.figures],
            recommendations=recommend(summary),
        )
    return _ENV.get_template("report.html.j2").render(**context(summary))


def write(summary: RunSummary, path: Path) -> Path:
    """Write the report to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render(summary), encoding="utf-8")
    return path
