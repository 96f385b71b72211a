"""How a stored converge run reads: per workload, time to target per mode, parity, the
verdict, and the metric and loss against wall-clock time with every seed overlaid; and the
advice it supports (`recommendations`) — all from the stored dict only (so runs stored by
older versions render too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from twinbench.converge.suite import PART_NAMES
from twinbench.report.recommend import Recommendation
from twinbench.report.text import fmt_number, fmt_seconds, fmt_steps, md_table
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


def recommendations(data: Mapping[str, Any]) -> list[Recommendation]:
    """Per workload: parity failures (which block speed advice), failed workers, starts that
    missed the target, then the mode that reaches the target first — by how much (the stored
    verdict's ratio and CI) and why (start-up, training steps, evaluation) — and the training
    length beyond which a faster-stepping rival would overtake it."""
    tasks = data["settings"]["tasks"]
    out: list[Recommendation] = []
    for workload in data["settings"]["workloads"]:
        task = tasks[workload]
        better = "≥" if task["higher_is_better"] else "≤"
        goal = f"{task['metric']} {better} {task['target']:g}"
        subject = f"{workload} to {goal}"
        checks = [p for p in data["parity"] if p["workload"] == workload]
        summaries = {r["mode"]: r for r in data["summaries"] if r["workload"] == workload}
        runs = [r for r in data["runs"] if r["workload"] == workload]
        out += [
            Recommendation("parity", subject, _disagreement(c, data["settings"]["curve_steps"]))
            for c in checks
            if not c["passed"]
        ]
        for run in runs:
            if run["status"] not in ("converged", "not converged"):
                first = (run.get("error") or "no error text").strip().splitlines()
                out.append(
                    Recommendation(
                        "failed",
                        subject,
                        f"{run['mode']} seed {run['seed']} {run['status']}: "
                        f"{first[0][:200] if first else ''} — that start has no time.",
                    )
                )
        out += _missed(summaries, runs, task["max_steps"], subject)
        verdict = next((v for v in data["verdicts"] if v["workload"] == workload), None)
        if verdict is None or verdict.get("winner") is None:
            if verdict is not None and checks and all(c["passed"] for c in checks):
                out.append(
                    Recommendation(
                        "not-converged",
                        subject,
                        f"no speed advice: {verdict['text'].removeprefix('no verdict: ')}.",
                    )
                )
            continue
        out += _speed(verdict, summaries[verdict["winner"]], summaries[verdict["rival"]], subject)
    return out


def _disagreement(check: Row, curve_steps: int) -> str:
    """Why a mode failed parity: the first curve that left the tolerance (the twins compute
    different things), or — the first losses agreeing — steps to target that differ (the runs
    drift apart later in training)."""
    bad = next((c for c in check["curves"] if not c["passed"]), None)
    if bad is not None:
        return (
            f"{check['mode']} does not train like {check['reference']} (seed {bad['seed']}: "
            f"{bad['detail']}), so its time to target is not comparable and gets no speed "
            "advice: fix the twin, then measure again."
        )
    return (
        f"{check['mode']} and {check['reference']} agree on the first {curve_steps} losses but "
        f"reach the target after {fmt_number(check['steps'], '.0f')} and "
        f"{fmt_number(check['reference_steps'], '.0f')} steps (median), beyond the margin of "
        f"{check['steps_margin']:.0f}: the runs drift apart later in training, so their times "
        "are not comparable and get no speed advice; more seeds firm up the medians, and a "
        "target the metric passes while still rising steeply is less sensitive to the drift."
    )


def _missed(summaries: Mapping[str, Row], runs: Iterable[Row], max_steps: int,
            subject: str) -> list[Recommendation]:  # fmt: skip
    """One line per mode that missed the target at some starts, naming them."""
    out = []
    for mode, row in summaries.items():
        seeds = [r["seed"] for r in runs if r["mode"] == mode and r["status"] == "not converged"]
        if not seeds:
            continue
        consequence = (
            "it has no time to target: raise --max-steps or lower --target"
            if not row["converged"]
            else f"{'it counts' if len(seeds) == 1 else 'they count'} as the slowest in its "
            "score: the target is near what this mode reliably reaches"
        )
        out.append(
            Recommendation(
                "not-converged",
                subject,
                f"{mode} did not reach the target within {max_steps} steps at seed "
                f"{', '.join(map(str, seeds))} ({len(seeds)} of {row['trained']}): {consequence}.",
            )
        )
    return out


def _speed(verdict: Row, winner: Row, rival: Row, subject: str) -> list[Recommendation]:
    """The stored verdict as advice, with the time's parts of both modes side by side."""
    w, r = verdict["winner"], verdict["rival"]
    interval = f"95 % CI {verdict['ci_low']:.2f}–{verdict['ci_high']:.2f}"
    if min(len(winner["kept_s"]), len(rival["kept_s"])) < 2:  # the CI collapsed to the ratio
        interval = "no CI: one kept time per mode; more seeds (the default five) give one"
    parts = (
        f"{w} vs {r}: start-up {fmt_seconds(winner['startup_s'])} vs "
        f"{fmt_seconds(rival['startup_s'])}; training steps {fmt_seconds(winner['steps_s'])} vs "
        f"{fmt_seconds(rival['steps_s'])}, {fmt_seconds(winner['step_s'])} vs "
        f"{fmt_seconds(rival['step_s'])} per step over "
        f"{fmt_number(winner['steps_to_target'], '.0f')} vs "
        f"{fmt_number(rival['steps_to_target'], '.0f')} steps; evaluation "
        f"{fmt_seconds(winner['eval_s'])} vs {fmt_seconds(rival['eval_s'])}"
    )
    if not verdict["significant"]:
        return [
            Recommendation(
                "indistinguishable",
                subject,
                f"{w} and {r} reach the target in times that cannot be told apart "
                f"({verdict['ratio']:.2f}×, {interval}, holds 1): choose on other grounds. "
                f"{parts}.",
            )
        ]
    out = [
        Recommendation(
            "time-to-target",
            subject,
            f"to reach the target first use {w}: {fmt_seconds(winner['median_s'])} against "
            f"{r}'s {fmt_seconds(rival['median_s'])}, which takes {verdict['ratio']:.2f}× as long "
            f"({interval}), mostly from {PART_NAMES[verdict['cause']]}. {parts}.",
        )
    ]
    step_w, step_r = winner["step_s"], rival["step_s"]
    head_start = (rival["startup_s"] or 0.0) - (winner["startup_s"] or 0.0)
    if step_w and step_r and step_r < step_w and head_start > 0:
        steps = head_start / (step_w - step_r)
        if steps > (winner["steps_to_target"] or 0):
            out.append(
                Recommendation(
                    "long-training",
                    subject,
                    f"{r} steps faster ({fmt_seconds(step_r)} against {fmt_seconds(step_w)}) but "
                    f"starts {fmt_seconds(head_start)} later: on a training longer than about "
                    f"{fmt_steps(steps)} steps (a harder target, more data) it would finish "
                    f"first; this target takes {fmt_number(winner['steps_to_target'], '.0f')} "
                    "steps.",
                )
            )
    return out


VIEW = register_view(
    SuiteView(
        kind="converge",
        title="The converge suite",
        markdown=render_markdown,
        figures=figures,
        rows=rows,
        recommendations=recommendations,
    )
)
