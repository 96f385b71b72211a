"""How a stored dynamic run reads: the strategy table, the verdict, the break-even points, the
feature table, and a cumulative-time figure in which every compile is a visible jump; and the
advice it supports (`recommendations`). Rendered from the stored dict only (no framework), so
older runs render too."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twinbench.report.recommend import Recommendation
from twinbench.report.text import fmt_number, fmt_seconds, fmt_steps, md_table
from twinbench.suite import SuiteView, register_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Row = Mapping[str, Any]
DETAIL_CHARS = 110


def render_markdown(data: Mapping[str, Any]) -> str:
    """The stored run as Markdown."""
    s = data["settings"]
    if s["scenario"] == "control-flow":
        lines = ["# twinbench dynamic: control flow and debugging", ""]
        lines += _features(data["features"])
    else:
        lines = [f"# twinbench dynamic: {s['scenario']}, {s['workload']} at {s['size']}", ""]
        if data.get("interrupted"):
            lines += ["**Interrupted**: only the strategies that finished are shown.", ""]
        lines += _schedule(s, data["lengths"])
        lines += _strategies(data["strategies"])
        lines += _per_shape(data["strategies"])
        lines += _recompiles(data["strategies"])
        lines += _verdict(data)
    if data["failures"]:
        lines += ["## Failures", "", *(f"- {f}" for f in data["failures"]), ""]
    return "\n".join(lines)


def _schedule(s: Mapping[str, Any], lengths: Sequence[int]) -> list[str]:
    bucket = "powers of two" if s["bucket"] is None else f"multiples of {s['bucket']}"
    leak = " **Planted mask bug on: padding counts in the loss.**" if s["leak_padding"] else ""
    shown = ", ".join(map(str, lengths[:24])) + (" …" if len(lengths) > 24 else "")
    varying = {"batch": "batch sizes", "generate": "prompt lengths"}.get(s["scenario"], "lengths")
    steps = "serving steps (forward only)" if s.get("phase") == "infer" else "training steps"
    steps = "prompts, greedy" if s["scenario"] == "generate" else steps
    return [
        f"{s['steps']} {steps}, {varying} from `{s['lengths']}` (seed {s['seed']}): "
        f"{len(set(lengths))} distinct, {min(lengths)} to {max(lengths)}; buckets: {bucket}; "
        f"{s['repeats']} process(es) per strategy; torch.compile backend {s['torch_backend']}; "
        f"{s['dtype']} on {s['device']}.{leak}",
        "",
        f"{varying.capitalize()}: {shown}",
        "",
    ]


def _strategies(rows: Sequence[Row]) -> list[str]:
    table = []
    for r in rows:
        if "wall_s" not in r:
            table.append(
                [r["strategy"], r["status"], *["—"] * 8, (r["error"] or "")[:DETAIL_CHARS]]
            )
            continue
        ci = f"[{fmt_seconds(r['wall_ci_low_s'])}, {fmt_seconds(r['wall_ci_high_s'])}]"
        breaks = r.get("graph_breaks")
        correct = r["correctness"]
        verdict = {True: "ok", False: "WRONG", None: "—"}[correct["passed"]]
        table.append([
            r["strategy"], r["status"], r["compiles"], fmt_seconds(r["compile_s"]),
            f"{fmt_seconds(r['wall_median_s'])} {ci}",
            "—" if r["padding_share"] is None else f"{r['padding_share']:.0%}",
            fmt_seconds(r["steady_median_s"]), "—" if breaks is None else sum(breaks.values()),
            "—" if r.get("peak_bytes") is None else f"{r['peak_bytes'] / 2**20:.1f}",
            f"{verdict}: {correct['detail'][:DETAIL_CHARS]}",
        ])  # fmt: skip
    header = ["strategy", "status", "compiles", "compile time", "schedule wall [95 % CI]",
              "padding", "steady step", "graph breaks", "peak MB", "vs torch-eager"]  # fmt: skip
    return [
        "## Strategies",
        "",
        "Compiles are counted by each framework's instruments (XLA's backend-compile events; "
        "Dynamo's captured graphs); the wall time is the whole schedule, compiles included; "
        "peak MB is how far the worker's resident memory rose during the schedule above the "
        "built model (compiled code and caches included), median over processes.",
        "",
        *md_table(header, table),
        "",
    ]


def _per_shape(rows: Sequence[Row]) -> list[str]:
    """Each strategy's median steady step (steps that compiled left out) per computed shape."""
    table = [
        [r["strategy"], " · ".join(f"{n}: {fmt_seconds(t)}" for n, t in r["steady_step_s"].items())]
        for r in rows
        if r.get("steady_step_s")
    ]
    if not table:
        return []
    return [
        "## Steady step per computed shape",
        "",
        *md_table(["strategy", "shape: step"], table),
        "",
    ]


def _recompiles(rows: Sequence[Row], shown: int = 3) -> list[str]:
    """Why each strategy compiled again, in its framework's words (Dynamo's failed guard, jit's
    changed input type), the first few of each."""
    lines = []
    for r in rows:
        reasons = r.get("recompile_reasons") or []
        if reasons:
            more = f" (and {len(reasons) - shown} more)" if len(reasons) > shown else ""
            quoted = "; ".join(f"`{reason[:DETAIL_CHARS]}`" for reason in reasons[:shown])
            lines.append(f"- {r['strategy']}: {quoted}{more}")
    return ["## Why it compiled again", "", *lines, ""] if lines else []


def _verdict(data: Mapping[str, Any]) -> list[str]:
    v = data["verdict"]
    lines = ["## Verdict", ""]
    fastest = v.get("fastest", {})
    lines += [f"- fastest {fw}: {name or '—'}" for fw, name in fastest.items()]
    if "overall" in v:
        lines.append(f"- fastest overall: {v['overall']}")
    if "ratio" in v:
        r = v["ratio"]
        note = " (one process each: no CI)" if r["processes"] < 2 else ""
        lines.append(
            f"- {r['text']}: {r['slower']} / {r['faster']} = {r['ratio']:.2f} "
            f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]{note}"
        )
    if v.get("excluded"):
        lines.append(f"- no verdict (failed or wrong): {', '.join(v['excluded'])}")
    lines.append("")
    points = v.get("break_even") or []
    if points:
        rows = [[p["strategy"], p["against"], p["kind"],
                 fmt_steps(p["value"]) if p["kind"] == "steps" else fmt_number(p["value"], ".3g"),
                 p["detail"]] for p in points]  # fmt: skip
        lines += [
            "## Break-even",
            "",
            *md_table(["strategy", "against", "after", "n", "reading"], rows),
            "",
            *_advice(data),
        ]
    return lines


def _advice(data: Mapping[str, Any]) -> list[str]:
    """The break-even points as advice (the report lists them among all `recommendations`)."""
    # as written: a sentence may open with a strategy's name, which keeps its case
    advice = [f"- {r.text}" for r in _break_even_advice(data, _subject(data["settings"]))]
    return ["## Recommendation", "", *advice, ""] if advice else []


def _subject(s: Mapping[str, Any]) -> str:
    return f"{s['workload']}/{s['size']} {s['scenario']}"


def recommendations(data: Mapping[str, Any]) -> list[Recommendation]:
    """Strategies that failed or computed something else (no speed advice for them), the
    fastest strategy per framework and overall with its CI, and the break-even points: how
    many distinct shapes make bucketing pay, after how many steps compiling pays for itself.
    For control flow: each feature that works in one framework and fails in the other."""
    s = data["settings"]
    if s["scenario"] == "control-flow":
        return _feature_advice(data["features"])
    subject = _subject(s)
    rows = data["strategies"]
    out = []
    for r in rows:
        if r["status"] != "ok":
            first = (r.get("error") or "no error text").strip().splitlines()
            text = f"{r['strategy']} {r['status']}: {first[0][:200] if first else ''} — not timed."
            out.append(Recommendation("failed", subject, text))
        elif (r.get("correctness") or {}).get("passed") is False:
            detail = r["correctness"]["detail"][:DETAIL_CHARS]
            text = (
                f"{r['strategy']} does not compute what torch-eager computes ({detail}): no "
                "speed advice for it until it does."
            )
            out.append(Recommendation("parity", subject, text))
    out += _fastest(data, subject)
    return out + _break_even_advice(data, subject)


def _fastest(data: Mapping[str, Any], subject: str) -> list[Recommendation]:
    """The verdict's fastest strategy per framework against the framework's runner-up, then
    the best of each framework against each other."""
    v, steps = data["verdict"], data["settings"]["steps"]
    timed = {r["strategy"]: r for r in data["strategies"] if r.get("wall_median_s") is not None}
    out = []
    for framework, name in (v.get("fastest") or {}).items():
        best = timed.get(name or "")
        if best is None:
            continue
        rivals = sorted(
            (r for r in timed.values() if r["framework"] == framework and r is not best
             and r["strategy"] not in v.get("excluded", [])),
            key=lambda r: r["wall_median_s"],
        )  # fmt: skip
        against = ""
        if rivals:
            runner_up = rivals[0]
            ratio = runner_up["wall_median_s"] / best["wall_median_s"]
            wall = fmt_seconds(runner_up["wall_median_s"])
            against = f"; the next, {runner_up['strategy']}, takes {wall} ({ratio:.2f}× as long)"
        out.append(
            Recommendation(
                "fastest",
                subject,
                f"in {framework} use {name} for this schedule: "
                f"{fmt_seconds(best['wall_median_s'])} for its {steps} steps "
                f"[{fmt_seconds(best['wall_ci_low_s'])}, {fmt_seconds(best['wall_ci_high_s'])}], "
                f"{_compiles(best)}{against}.",
            )
        )
    if "ratio" in v:
        r = v["ratio"]
        quoted = f"{r['slower']} takes {r['ratio']:.2f}× as long as {r['faster']}"
        if r["processes"] < 2:
            text = (
                f"across frameworks {quoted} in one process each, which gives no CI: measure "
                "again with --repeats 3 or more before choosing on it."
            )
            out.append(Recommendation("noisy", subject, text))
        elif r["ci_low"] > 1:
            text = (
                f"across frameworks {r['faster']} finishes the schedule first: {quoted} "
                f"(95 % CI {r['ci_low']:.2f}–{r['ci_high']:.2f})."
            )
            out.append(Recommendation("fastest", subject, text))
        else:
            text = (
                f"across frameworks {r['faster']} and {r['slower']} cannot be told apart "
                f"({r['ratio']:.2f}×, 95 % CI {r['ci_low']:.2f}–{r['ci_high']:.2f} holds 1): "
                "choose on other grounds."
            )
            out.append(Recommendation("indistinguishable", subject, text))
    return out


def _compiles(row: Row) -> str:
    n = row["compiles"]
    if not n:
        return "no compiles"
    return f"{n} compile{'s' if n > 1 else ''} taking {fmt_seconds(row['compile_s'])}"


def _break_even_advice(data: Mapping[str, Any], subject: str) -> list[Recommendation]:
    """When to pad to buckets (against this schedule's own distinct shapes) and when compiling
    pays for itself, from the verdict's break-even points."""
    distinct = len(set(data.get("lengths") or []))
    out = []
    for p in data["verdict"].get("break_even") or []:
        if p["kind"] == "distinct shapes":
            if p["value"] is None:
                continue
            limit = math.floor(p["value"])  # more than 1.25 shapes: 2 or more
            choice = p["against"] if distinct > p["value"] else p["strategy"]
            here = f"; this schedule has {distinct}: {choice} by this count" if distinct else ""
            text = (
                f"with more than {limit} distinct shapes in a schedule this long, pad to buckets: "
                f"{p['against']} beats {p['strategy']}{here}."
            )
            out.append(Recommendation("bucketing", subject, text))
        elif p["value"] is None:
            out.append(Recommendation("short-runs", subject, f"{p['detail']}: use {p['against']}."))
        else:
            text = (
                f"compiling pays for itself after {fmt_steps(p['value'])} steps: {p['strategy']} "
                f"beats {p['against']} on longer jobs; for shorter ones {p['against']} is faster."
            )
            out.append(Recommendation("short-runs", subject, text))
    return out


def _feature_advice(cells: Sequence[Row]) -> list[Recommendation]:
    """Each feature that works in one framework (some mode) and fails in every mode of the other."""
    works: dict[str, dict[str, list[str]]] = {}
    for c in cells:
        works.setdefault(c["feature"], {}).setdefault(c["framework"], [])
        if c["status"] == "works":
            works[c["feature"]][c["framework"]].append(c["mode"])
    out = []
    for feature, by_framework in works.items():
        working = {fw: modes for fw, modes in by_framework.items() if modes}
        failing = [fw for fw, modes in by_framework.items() if not modes]
        if working and failing:
            where = "; ".join(f"{fw} ({', '.join(modes)})" for fw, modes in working.items())
            text = f"{feature} works in {where} and fails in {', '.join(failing)}."
            out.append(Recommendation("features", feature, text))
    return out


def _features(cells: Sequence[Row]) -> list[str]:
    rows = [[c["feature"], c["framework"], c["mode"], c["status"], c["detail"][:DETAIL_CHARS]]
            for c in cells]  # fmt: skip
    return [
        "## Features",
        "",
        'Each cell is a check that ran: "works" only when its assertions passed; "fails" keeps '
        "the error the user would see.",
        "",
        *md_table(["feature", "framework", "mode", "status", "evidence"], rows),
        "",
    ]


def figures(data: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """Cumulative schedule time against the step, one line per strategy; a compile is a jump,
    marked. None for a run without timed strategies."""
    rows = [r for r in data.get("strategies", []) if "cumulative_s" in r]
    if not rows:
        return []
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = figure.subplots()
    for r in rows:
        steps = list(range(1, len(r["cumulative_s"]) + 1))
        line = ax.plot(steps, r["cumulative_s"], label=r["strategy"],
                       linestyle="-" if r["framework"] == "torch" else "--")[0]  # fmt: skip
        jumps = [i for i, n in enumerate(r["compiles_per_step"]) if n]
        ax.plot([steps[i] for i in jumps], [r["cumulative_s"][i] for i in jumps], "o",
                color=line.get_color(), markersize=4)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative wall time (s)")
    ax.set_title("Schedule time by strategy (dots: steps that compiled)")
    ax.legend(fontsize="small", ncol=2)
    return [("cumulative_time", figure)]


def rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For CSV: one row per feature check (control flow), else one per strategy with its
    compiles, schedule wall time and CI, padding, steady step and correctness."""
    if data["settings"]["scenario"] == "control-flow":
        keys = ("feature", "framework", "mode", "status", "detail")
        return [{k: c[k] for k in keys} for c in data["features"]]
    table = []
    for r in data["strategies"]:
        breaks = r.get("graph_breaks")
        correct = r.get("correctness") or {}
        table.append(
            {
                "strategy": r["strategy"],
                "framework": r["framework"],
                "status": r["status"],
                "error": r["error"],
                "distinct_shapes": r.get("distinct_shapes"),
                "padding_share": r.get("padding_share"),
                "compiles": r.get("compiles"),
                "compile_s": r.get("compile_s"),
                "wall_median_s": r.get("wall_median_s"),
                "wall_ci_low_s": r.get("wall_ci_low_s"),
                "wall_ci_high_s": r.get("wall_ci_high_s"),
                "steady_step_median_s": r.get("steady_median_s"),
                "graph_breaks": None if breaks is None else sum(breaks.values()),
                "schedule_peak_resident_bytes": r.get("peak_bytes"),
                "recompiles_explained": len(r.get("recompile_reasons") or []),
                "correct": correct.get("passed"),
                "correctness_detail": correct.get("detail"),
            }
        )
    return table


VIEW = register_view(
    SuiteView(
        kind="dynamic",
        title="The dynamic suite",
        markdown=render_markdown,
        figures=figures,
        rows=rows,
        recommendations=recommendations,
    )
)
