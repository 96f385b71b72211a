"""The converge view's recommendations, from fabricated stored runs: the mode that reaches the
target first and why, flipping with the numbers; starts that missed the target named; no speed
advice past a parity failure; and the report of a stored run lists them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twinbench.converge import ConvergeReport, ConvergeSettings
from twinbench.converge.suite import check_parity, summarise, verdict
from twinbench.converge.view import recommendations
from twinbench.report.recommend import KINDS, Recommendation

MODES = ("torch-eager", "jax-jit")
SETTINGS = ConvergeSettings(workloads=("cancer",), modes=MODES, seeds=5, threads=1)
FAST = [2.0, 2.1, 1.9, 2.05, 1.95]
SLOW = [6.0, 6.2, 5.9, 6.1, 6.05]


def _runs(mode: str, times: list[float], *, startup: float, steps: int = 100,
          evaluation: float = 0.1) -> list[dict[str, Any]]:  # fmt: skip
    return [
        {
            "workload": "cancer", "mode": mode, "seed": seed, "status": "converged",
            "error": None, "time_to_target_s": t, "time_s": t, "steps": steps,
            "steps_to_target": steps, "startup_s": startup, "eval_s": evaluation,
            "steps_s": t - startup - evaluation, "curve": [1.0, 0.9, 0.8],
        }
        for seed, t in enumerate(times)
    ]  # fmt: skip


def _report(runs: list[dict[str, Any]]) -> ConvergeReport:
    summaries = [summarise("cancer", m, [r for r in runs if r["mode"] == m]) for m in MODES]
    parity = check_parity("cancer", MODES, runs, eval_every=10)
    return ConvergeReport(SETTINGS, runs, summaries, parity, [verdict("cancer", summaries, parity)])


def _advice(runs: list[dict[str, Any]]) -> list[Recommendation]:
    return recommendations(_report(runs).to_dict())


def _text(advice: list[Recommendation], kind: str) -> str:
    return " ".join(r.text for r in advice if r.kind == kind)


def test_the_mode_first_to_the_target_is_recommended_with_why_and_flips_with_the_numbers() -> None:
    compile_bound = _advice(
        _runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5)
    )
    text = _text(compile_bound, "time-to-target")
    assert "use torch-eager" in text and "jax-jit's 6.05 s" in text
    assert "takes 3.0" in text and "95 % CI" in text
    assert "mostly from compile and start-up." in text
    assert "start-up 500 ms vs 4.5 s" in text  # both modes' parts quoted
    assert all(r.kind in KINDS for r in compile_bound)

    step_bound = _advice(
        _runs("jax-jit", FAST, startup=1.0) + _runs("torch-eager", SLOW, startup=1.0)
    )
    text = _text(step_bound, "time-to-target")
    assert "use jax-jit" in text and "use torch-eager" not in text
    assert "mostly from per-step speed" in text


def test_a_rival_that_steps_faster_is_said_to_win_longer_training() -> None:
    # torch: 0.5 s start-up, 15 ms per step; jax: 4.5 s start-up, 5 ms per step (100 steps each)
    runs = _runs("torch-eager", [t + 1.0 for t in FAST], startup=0.5)
    runs += _runs("jax-jit", [t + 4.5 for t in FAST], startup=4.5, evaluation=0.1)
    advice = _advice(runs)
    winner = next(s for s in _report(runs).summaries if s["mode"] == "torch-eager")
    rival = next(s for s in _report(runs).summaries if s["mode"] == "jax-jit")
    steps = (rival["startup_s"] - winner["startup_s"]) / (winner["step_s"] - rival["step_s"])
    text = _text(advice, "long-training")
    assert "jax-jit steps faster" in text and f"about {steps:,.0f} steps" in text
    # equal per-step speed: nothing to overtake with
    same = _advice(_runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5))
    assert not _text(same, "long-training")


def test_equal_times_are_called_indistinguishable() -> None:
    advice = _advice(_runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", FAST, startup=0.5))
    assert not _text(advice, "time-to-target")
    assert "cannot be told apart" in _text(advice, "indistinguishable")


def test_a_start_that_missed_the_target_is_named() -> None:
    stuck = _runs("jax-jit", SLOW, startup=4.5)
    stuck[3].update(status="not converged", time_to_target_s=None, steps_to_target=None)
    advice = _advice(_runs("torch-eager", FAST, startup=0.5) + stuck)
    text = _text(advice, "not-converged")
    assert "jax-jit did not reach the target within 2000 steps at seed 3 (1 of 5)" in text
    assert "counts as the slowest" in text
    assert "use torch-eager" in _text(advice, "time-to-target")  # four of five still scored


def test_a_parity_failure_gives_no_speed_advice() -> None:
    runs = _runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5)
    runs[7]["curve"] = [1.0, 0.9, 0.7]  # jax-jit seed 2 leaves the tolerance at step 2
    advice = _advice(runs)
    assert [r.kind for r in advice] == ["parity"]
    assert "jax-jit does not train like torch-eager (seed 2:" in advice[0].text


def test_steps_to_target_that_differ_are_told_apart_from_a_curve_failure() -> None:
    runs = _runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=0.5, steps=300)
    advice = _advice(runs)
    assert [r.kind for r in advice] == ["parity"]
    text = advice[0].text
    assert "agree on the first 20 losses but reach the target after 300 and 100 steps" in text
    assert "fix the twin" not in text


def test_one_mode_alone_gets_no_comparison() -> None:
    runs = _runs("torch-eager", FAST, startup=0.5)
    summaries = [summarise("cancer", "torch-eager", runs)]
    parity = check_parity("cancer", ["torch-eager"], runs, eval_every=10)
    data = ConvergeReport(SETTINGS, runs, summaries, parity, [verdict("cancer", summaries, parity)])
    assert recommendations(data.to_dict()) == []


def test_too_few_converged_starts_give_no_speed_advice() -> None:
    stuck = _runs("jax-jit", SLOW, startup=4.5)
    for run in stuck[:3]:
        run.update(status="not converged", time_to_target_s=None, steps_to_target=None)
    advice = _advice(_runs("torch-eager", FAST, startup=0.5) + stuck)
    assert {r.kind for r in advice} == {"not-converged"}
    assert "no speed advice: fewer than two modes reached the target" in _text(
        advice, "not-converged"
    )


def test_a_failed_worker_is_listed() -> None:
    runs = _runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5)
    runs[0] = {**runs[0], "status": "crashed", "error": "Segmentation fault\nmore"}
    text = _text(_advice(runs), "failed")
    assert text == "torch-eager seed 0 crashed: Segmentation fault — that start has no time."


def test_a_stored_converge_run_shows_its_advice_in_the_report(tmp_path: Path) -> None:
    from twinbench.report import html, markdown
    from twinbench.report.summary import load_summary
    from twinbench.suite import record

    runs = _runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5)
    record(_report(runs), tmp_path)
    summary = load_summary(tmp_path)
    page = markdown.render(summary)
    section = page.split("## Recommendations", 1)[1]
    assert "- **time-to-target** — cancer to validation accuracy ≥ 0.96: to reach" in section
    assert "use torch-eager" in section
    document = html.render(summary)
    assert "id='recommendations'" in document and "to reach the target first use torch-eager" in (
        document
    )


@pytest.mark.parametrize("status", ["interrupted", "failed"])
def test_an_unfinished_suite_run_says_so(status: str) -> None:
    from twinbench.report.recommend import recommend
    from twinbench.report.summary import summarize_run
    from twinbench.store import RunRecord

    data = _report(_runs("torch-eager", FAST, startup=0.5) + _runs("jax-jit", SLOW, startup=4.5))
    run = RunRecord(1, "2026-01-01T00:00:00+00:00", None, status, {}, {"kind": "converge"},
                    {"converge": data.to_dict()})  # fmt: skip
    advice = recommend(summarize_run(run, [], []))
    assert advice[-1].kind == "run" and f"the run is {status}" in advice[-1].text
    assert advice[0].kind == "time-to-target"
