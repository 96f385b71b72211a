"""How a stored deploy run reads: the feature table, sizes and export times, cold starts,
latency percentiles, fidelity and the verdicts, from the stored dict only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twinbench.deploy.rows import rows
from twinbench.report.text import fmt_number, fmt_seconds, md_table
from twinbench.suite import SuiteView, register_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DETAIL_CHARS = 120  # of an error, so one row stays one line
KIB = 1024
Row = Mapping[str, Any]


def render_markdown(data: Mapping[str, Any]) -> str:
    """The stored run as Markdown: settings, then one section per measure."""
    s = data["settings"]
    cells: Sequence[Row] = data["cells"]
    lines = [
        "# twinbench deploy",
        "",
        f"Size {s['size']}, {s['dtype']} on {s['device']}, {s['threads']} threads, eval mode; "
        f"{s['repeats']} fresh serving processes per path, up to {s['budget_s']} s of "
        "single-call timing per batch size in each. A call takes NumPy inputs and returns NumPy "
        "outputs.",
        "",
        *(
            ["**Interrupted**: only the workloads that finished before the stop are shown.", ""]
            if data.get("interrupted")
            else []
        ),
        *_features(data["features"]),
        *_recommendations(data),
        *_verdicts(data["verdicts"]),
        *_export(cells),
        *_cold_start(cells),
        *_latency(cells),
        *_fidelity(cells, data["comparisons"]),
    ]
    if data["failures"]:
        lines += ["## Failures", "", *(f"- {f}" for f in data["failures"]), ""]
    return "\n".join(lines)


def _features(features: Sequence[Row]) -> list[str]:
    rows = [
        [
            f["workload"],
            f["path"],
            _short(f["exported"]),
            _short(f["dynamic_batch"]),
            f["fidelity"],
            {True: "yes", False: "no", None: "—"}[f["matches_other_framework"]],
        ]
        for f in features
    ]
    header = ["workload", "path", "exported", "dynamic batch", "fidelity",
              "matches other framework"]  # fmt: skip
    return _section("Features (from what ran)", header, rows)


def _recommendations(data: Mapping[str, Any]) -> list[str]:
    from twinbench.deploy.advice import advice

    lines = advice(data)
    return ["## Recommendations", "", *(f"- {line}" for line in lines), ""] if lines else []


def _short(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def _verdicts(verdicts: Sequence[Row]) -> list[str]:
    rows = []
    for v in verdicts:
        ratio = "—"
        if "ratio_torch_over_jax" in v:
            ratio = f"{v['ratio_torch_over_jax']:.2f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}]"
        rows.append([v["workload"], v["group"], v["what"], ratio, v["verdict"]])
    header = ["workload", "runtime", "measure", "torch / jax time [95 % CI]", "verdict"]
    return _section("Verdicts", header, rows)


def _export(cells: Sequence[Row]) -> list[str]:
    rows = []
    for c in cells:
        size = c.get("size_bytes")
        rows.append(
            [
                c["workload"],
                c["path"],
                c["status"],
                fmt_seconds(c.get("export_s")),
                fmt_seconds((c.get("phases") or {}).get("setup_s")),
                "—" if size is None else f"{size / KIB:,.1f} KiB",
            ]
        )
    header = ["workload", "path", "status", "export time", "exporter set-up", "size on disk"]
    errors = [f"- {c['workload']} {c['path']}: {c['error']}" for c in cells if c.get("error")]
    return _section("Export and size", header, rows) + errors + ([""] if errors else [])


def _cold_start(cells: Sequence[Row]) -> list[str]:
    rows = []
    for c in cells:
        cold = c.get("cold_start")
        if not cold:
            continue
        rows.append(
            [
                c["workload"],
                c["path"],
                _with_ci(cold["median_s"], cold),
                fmt_seconds(cold["median_import_s"]),
                fmt_seconds(cold["median_load_s"]),
                fmt_seconds(cold["median_first_call_s"]),
                c.get("device") or "—",
            ]
        )
    header = ["workload", "path", "cold start [95 % CI]", "runtime import", "load", "first call",
              "device"]  # fmt: skip
    return _section("Cold start (a fresh process that did not export)", header, rows)


def _latency(cells: Sequence[Row]) -> list[str]:
    rows = []
    for c in cells:
        for b, lat in (c.get("latency") or {}).items():
            rows.append(
                [
                    c["workload"],
                    c["path"],
                    b,
                    _with_ci(lat["p50_s"], lat),
                    fmt_seconds(lat["p95_s"]),
                    fmt_seconds(lat["p99_s"]),
                    fmt_number(lat["throughput_per_s"], ",.0f"),
                    lat["n"],
                ]
            )
    header = ["workload", "path", "batch", "p50 [95 % CI]", "p95", "p99", "rows/s", "calls"]
    intro = (
        "p50's interval is the hierarchical bootstrap over the serving processes; p95 and p99 "
        "are of all calls pooled."
    )
    return _section("Latency per call", header, rows, intro)


def _fidelity(cells: Sequence[Row], comparisons: Sequence[Row]) -> list[str]:
    rows = []
    for c in cells:
        for b, check in (c.get("fidelity") or {}).items():
            rows.append([c["workload"], c["path"], "eager twin", b, *_check_cells(check)])
    for comp in comparisons:
        for b, check in comp["checks"].items():
            rows.append(
                [comp["workload"], comp["group"], "torch vs jax artefact", b, *_check_cells(check)]
            )
    header = ["workload", "path", "against", "batch", "result", "max abs", "max rel"]
    return _section("Fidelity", header, rows)


def _section(
    title: str, header: Sequence[str], rows: Sequence[Sequence[object]], intro: str = ""
) -> list[str]:
    """A titled table, ``intro`` above it; nothing when there are no rows."""
    if not rows:
        return []
    return [f"## {title}", "", *([intro, ""] if intro else []), *md_table(header, rows), ""]


def _with_ci(seconds: float, summary: Row) -> str:
    """``seconds`` followed by the summary's 95 % interval."""
    low, high = fmt_seconds(summary["ci_low_s"]), fmt_seconds(summary["ci_high_s"])
    return f"{fmt_seconds(seconds)} [{low}, {high}]"


def _check_cells(check: Row) -> list[str]:
    result = "pass" if check["passed"] else "fail"
    return [
        result,
        fmt_number(check.get("max_abs"), ".2e"),
        fmt_number(check.get("max_rel"), ".2e"),
    ]


def figures(data: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """Latency distributions, cold-start bars and artefact sizes; none without served cells."""
    from twinbench.deploy.plot import cold_start_figure, latency_figure, size_figure

    named = [
        ("latency", latency_figure(data)),
        ("cold-start", cold_start_figure(data)),
        ("size", size_figure(data)),
    ]
    return [(name, fig) for name, fig in named if fig is not None]


VIEW = register_view(
    SuiteView(
        kind="deploy",
        title="The deploy suite",
        markdown=render_markdown,
        figures=figures,
        rows=rows,
    )
)
