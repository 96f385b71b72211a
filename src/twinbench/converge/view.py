"""How a stored converge run reads: per workload, time to target per mode, parity, the
verdict, and the metric and loss against wall-clock time with every seed overlaid — rendered
from the stored dict only (so runs stored by older versions render too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from twinbench.report.text import fmt_number, fmt_seconds, md_table
from twinbench.suite import SuiteView, register_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Row = Mapping[str, Any]

PROTOCOL = (
    "Time to target runs from the start of a fresh worker's work — model build, canonical init, "
    "compilation and every evaluation included; the framework's import and the dataset's "
    "loading (NumPy, the same for both) are not — to the first evaluation that meets the "
    "target. Both frameworks get the same NumPy batches from one seeded pipeline, each moved "
    "to the device inside the timed step, alike. Per mode: MLPerf's score, the median over "
    "seeds with the fastest and the slowest dropped, with a 95 % bootstrap CI; a seed that "
    "did not reach the target counts as slowest."
)


def render_markdown(data: Mapping[str, Any]) -> str:
    """The stored run as Markdown: protocol, then one section per workload, then failures."""
    s = data["settings"]
    seeds = ", ".join(map(str, s["seeds"]))
    lines = [
        "# twinbench converge",
        "",
        f"{s['threads']} threads, {s['dtype']} on {s['device']}, seeds {seeds}.",
        "",
        PROTOCOL,
        "",
    ]
    if data.get("interrupted"):
        lines += ["**Interrupted**: only the seeds that finished before the stop are scored.", ""]
    for workload in s["workloads"]:
        lines += _workload(data, workload, s["tasks"][workload])
    if data["failures"]:
        lines += ["## Failures", "", *(f"- {f}" for f in data["failures"]), ""]
    return "\n".join(lines)


def _workload(data: Mapping[str, Any], workload: str, task: Row) -> list[str]:
    summaries = [r for r in data["summaries"] if r["workload"] == workload]
    parity = {p["mode"]: p for p in data["parity"] if p["workload"] == workload}
    verdict = next((v for v in data["verdicts"] if v["workload"] == workload), None)
    rows = [
        [
            r["mode"],
            f"{r['converged']}/" + str(r["seeds"]),
            _time(r),
            fmt_number(r["steps_to_target"], ".0f"),
            fmt_seconds(r["startup_s"]),
            fmt_seconds(r["step_s"]),
            fmt_seconds(r["eval_s"]),
            _parity_text(parity.get(r["mode"])),
        ]
        for r in summaries
    ]
    header = ["mode", "converged", "time to target [95 % CI]", "steps", "start-up", "per step",
              "evaluation", "parity"]  # fmt: skip
    better = "≥" if task["higher_is_better"] else "≤"
    lines = [
        f"## {workload}: {task['description']}",
        "",
        f"Dataset `{task['dataset']}`; target: {task['metric']} {better} {task['target']:g}; "
        f"evaluated every {task['eval_every']} steps, at most {task['max_steps']} steps; "
        f"{task['optimizer']}, batch {task['batch_size']}.{_persistence(task)}",
        "",
        *md_table(header, rows),
        "",
    ]
    if verdict is not None:
        lines += [f"**Verdict:** {verdict['text']}.", ""]
    lines += _parity_failures(parity.values())
    return lines


def _persistence(task: Row) -> str:
    mse = task.get("persistence_mse")
    if mse is None:
        return ""
    return (
        f" Persistence (the last value as the forecast) scores a validation MSE of {mse:.3g} "
        f"(standardised units); the target is {mse * task['target']:.3g}."
    )


def _time(row: Row) -> str:
    """The score with its CI; the store keeps infinity (a seed not converged) as None."""
    median, high = row["median_s"], row["ci_high_s"]
    if median is None or median == float("inf"):
        return "not converged" if row.get("trained") else "—"
    text = f"{fmt_seconds(median)} [{fmt_seconds(row['ci_low_s'])}, "
    return text + ("∞]" if high is None or high == float("inf") else f"{fmt_seconds(high)}]")


def _parity_text(check: Row | None) -> str:
    if check is None:
        return "reference"
    curves = "curves ok" if check["curves_passed"] else "curves differ"
    steps = "steps ok" if check["steps_passed"] else "steps differ"
    return f"{curves}, {steps} (vs {check['reference']})"


def _parity_failures(checks: Iterable[Row]) -> list[str]:
    lines = []
    for check in checks:
        for curve in check["curves"]:
            if not curve["passed"]:
                lines.append(f"- {check['mode']} seed {curve['seed']}: {curve['detail']}")
        if not check["steps_passed"]:
            lines.append(
                f"- {check['mode']}: median steps to target {fmt_number(check['steps'], '.0f')} "
                f"vs {fmt_number(check['reference_steps'], '.0f')} ({check['reference']}), "
                f"margin {check['steps_margin']:.0f}"
            )
    return [*lines, ""] if lines else []


def figures(data: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """Per workload: loss and metric against wall-clock time, each seed a line, by mode."""
    from matplotlib.figure import Figure

    from twinbench.report.plots import color

    out = []
    for workload in data["settings"]["workloads"]:
        task = data["settings"]["tasks"][workload]
        runs = [r for r in data["runs"] if r["workload"] == workload and r.get("evaluations")]
        if not runs:
            continue
        figure = Figure(figsize=(9.0, 3.4), layout="constrained")
        loss_ax, metric_ax = figure.subplots(1, 2)
        labelled: set[str] = set()
        for run in runs:
            points = run["evaluations"]
            times = [p["time_s"] for p in points]
            label = None if run["mode"] in labelled else run["mode"]
            labelled.add(run["mode"])
            style = {"color": color(run["mode"]), "linewidth": 1.0, "alpha": 0.8}
            loss_ax.plot(times, [p["loss"] for p in points], label=label, **style)
            metric_ax.plot(times, [p["metric"] for p in points], label=label, **style)
        metric_ax.axhline(task["target"], color="#495057", linestyle=":", linewidth=1)
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("training loss (last step)")
        metric_ax.set_ylabel(task["metric"])
        for ax in (loss_ax, metric_ax):
            ax.set_xlabel("wall-clock time since the worker's start [s]")
        metric_ax.legend(loc="best")
        figure.suptitle(f"{workload}: every seed, target dotted")
        out.append((f"converge-{workload}", figure))
    return out


def rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per workload and mode, for CSV: the time-to-target score with its CI (None: not
    reached), the steps and the time's parts (medians over the seeds that converged), parity
    against the reference mode (the reference row names itself)."""
    tasks = data["settings"]["tasks"]
    parity = {(p["workload"], p["mode"]): p for p in data["parity"]}
    table = []
    for r in data["summaries"]:
        task, check = tasks[r["workload"]], parity.get((r["workload"], r["mode"]))
        table.append(
            {
                "workload": r["workload"],
                "mode": r["mode"],
                "metric": task["metric"],
                "target": task["target"],
                "seeds": r["seeds"],
                "seeds_converged": r["converged"],
                "time_to_target_s": r["median_s"],
                "time_to_target_ci_low_s": r["ci_low_s"],
                "time_to_target_ci_high_s": r["ci_high_s"],
                "steps_to_target": r["steps_to_target"],
                "startup_s": r["startup_s"],
                "per_step_s": r["step_s"],
                "evaluation_s": r["eval_s"],
                "parity_reference": r["mode"] if check is None else check["reference"],
                "parity_passed": None if check is None else check["passed"],
            }
        )
    return table


VIEW = register_view(
    SuiteView(
        kind="converge",
        title="The converge suite",
        markdown=render_markdown,
        figures=figures,
        rows=rows,
    )
)
