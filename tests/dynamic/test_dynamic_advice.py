"""The dynamic view's recommendations, from fabricated stored strategies: the fastest strategy per
framework and overall (flipping with the numbers), no speed advice for a wrong one, when to pad
to buckets and when compiling pays for itself, and features that work in one framework only."""

from __future__ import annotations

import math
from typing import Any

from twinbench.dynamic.suite import break_even, verdict
from twinbench.dynamic.view import recommendations
from twinbench.report.recommend import KINDS, Recommendation

STEPS = 10


def _row(name: str, framework: str, *, compiles: int, compile_s: float, step: float,
         wall: list[float], passed: bool = True) -> dict[str, Any]:  # fmt: skip
    median = sorted(wall)[len(wall) // 2]
    return {
        "strategy": name, "framework": framework, "status": "ok", "error": None,
        "compiles": compiles, "compile_s": compile_s, "steady_median_s": step,
        "compiles_per_step": [0] * STEPS, "wall_s": wall, "wall_median_s": median,
        "wall_ci_low_s": min(wall), "wall_ci_high_s": max(wall),
        "padding_share": 0.0,
        "correctness": {"passed": passed, "detail": "" if passed else "losses differ at step 3"},
    }  # fmt: skip


def _rows(jax_wall: list[float]) -> list[dict[str, Any]]:
    return [
        _row("torch-eager", "torch", compiles=0, compile_s=0.0, step=0.5, wall=[5.0, 5.1, 5.2]),
        _row("torch-compile", "torch", compiles=2, compile_s=8.0, step=0.3, wall=[11, 11.2, 11.1]),
        _row("jax-jit", "jax", compiles=4, compile_s=8.0, step=0.1, wall=[9.0, 9.1, 9.2]),
        _row("jax-jit-bucketed", "jax", compiles=1, compile_s=2.0, step=0.15, wall=jax_wall),
        _row("jax-jit-pad-max", "jax", compiles=1, compile_s=2.0, step=0.05, wall=[2.0, 2.1, 2.2],
             passed=False),
    ]  # fmt: skip


def _data(rows: list[dict[str, Any]], lengths: list[int] | None = None) -> dict[str, Any]:
    return {
        "settings": {"scenario": "seq-len", "workload": "gpt", "size": "tiny", "steps": STEPS},
        "lengths": lengths if lengths is not None else [5, 9] * 5,
        "strategies": rows, "verdict": verdict(rows), "features": [], "failures": [],
    }  # fmt: skip


def _text(advice: list[Recommendation], kind: str) -> str:
    return " ".join(r.text for r in advice if r.kind == kind)


def test_the_fastest_strategy_per_framework_and_overall_flips_with_the_numbers() -> None:
    advice = recommendations(_data(_rows(jax_wall=[3.5, 3.6, 3.7])))
    fastest = _text(advice, "fastest")
    assert "in torch use torch-eager for this schedule: 5.1 s for its 10 steps" in fastest
    assert "no compiles" in fastest and "1 compile taking 2 s" in fastest
    assert "the next, torch-compile, takes 11.1 s (2.18× as long)" in fastest
    assert "in jax use jax-jit-bucketed" in fastest
    assert "across frameworks jax-jit-bucketed finishes the schedule first" in fastest
    assert "torch-eager takes 1.42× as long as jax-jit-bucketed (95 % CI" in fastest
    assert all(r.kind in KINDS for r in advice)

    slower = recommendations(_data(_rows(jax_wall=[9.5, 9.6, 9.7])))  # now jax-jit beats it
    fastest = _text(slower, "fastest")
    assert "in jax use jax-jit for this schedule" in fastest
    assert "across frameworks torch-eager finishes the schedule first" in fastest


def test_a_wrong_strategy_gets_no_speed_advice() -> None:
    advice = recommendations(_data(_rows(jax_wall=[3.5, 3.6, 3.7])))
    wrong = [r for r in advice if "jax-jit-pad-max" in r.text]
    assert [r.kind for r in wrong] == ["parity"]
    assert "does not compute what torch-eager computes (losses differ at step 3)" in wrong[0].text


def test_bucketing_and_payback_advice_quote_the_break_even_points() -> None:
    rows = _rows(jax_wall=[3.5, 3.6, 3.7])
    points = {(p["strategy"], p["against"]): p["value"] for p in break_even(
        {r["strategy"]: r for r in rows if r["correctness"]["passed"]})}  # fmt: skip
    limit = math.floor(points[("jax-jit", "jax-jit-bucketed")])  # more than 1.25: 2 or more
    few = _text(recommendations(_data(rows, lengths=[5] * STEPS)), "bucketing")
    assert f"with more than {limit} distinct shapes in a schedule this long, pad to buckets" in few
    assert "this schedule has 1: jax-jit by this count" in few
    many = _text(recommendations(_data(rows, lengths=list(range(1, STEPS + 1)))), "bucketing")
    assert f"this schedule has {STEPS}: jax-jit-bucketed by this count" in many
    payback = _text(recommendations(_data(rows)), "short-runs")
    steps = points[("torch-compile", "torch-eager")]
    assert f"compiling pays for itself after {steps:,.0f} steps: torch-compile beats" in payback


def test_a_compiled_strategy_that_is_not_faster_per_step_never_pays_back() -> None:
    rows = _rows(jax_wall=[3.5, 3.6, 3.7])
    rows[1]["steady_median_s"] = 0.6  # torch-compile slower per step than torch-eager's 0.5 s
    payback = _text(recommendations(_data(rows)), "short-runs")
    assert "torch-compile's steady step is not faster than torch-eager's" in payback
    assert "use torch-eager" in payback


def test_one_process_each_gives_no_cross_framework_verdict() -> None:
    rows = [
        _row("torch-eager", "torch", compiles=0, compile_s=0.0, step=0.5, wall=[5.0]),
        _row("jax-jit", "jax", compiles=1, compile_s=1.0, step=0.1, wall=[2.0]),
    ]
    advice = recommendations(_data(rows))
    assert "one process each, which gives no CI" in _text(advice, "noisy")
    assert "finishes the schedule first" not in _text(advice, "fastest")


def test_a_failed_strategy_is_listed() -> None:
    rows = _rows(jax_wall=[3.5, 3.6, 3.7])
    rows.append({"strategy": "torch-compile-dynamic", "framework": "torch", "status": "timeout",
                 "error": "no answer in 1800 s\ntrace"})  # fmt: skip
    text = _text(recommendations(_data(rows)), "failed")
    assert text == "torch-compile-dynamic timeout: no answer in 1800 s — not timed."


def test_control_flow_names_features_that_work_in_one_framework_only() -> None:
    cells = [
        {"feature": "print inside", "framework": "torch", "mode": "eager", "status": "works"},
        {"feature": "print inside", "framework": "jax", "mode": "jit", "status": "fails"},
        {"feature": "while loop", "framework": "torch", "mode": "eager", "status": "works"},
        {"feature": "while loop", "framework": "jax", "mode": "jit", "status": "works"},
    ]
    data = {"settings": {"scenario": "control-flow"}, "features": cells, "failures": []}
    advice = recommendations(data)
    assert [(r.subject, r.text) for r in advice] == [
        ("print inside", "print inside works in torch (eager) and fails in jax.")
    ]


def test_a_stored_dynamic_run_lists_its_advice_in_the_report() -> None:
    from twinbench.report import markdown
    from twinbench.report.summary import summarize_run
    from twinbench.store import RunRecord

    data = _data(_rows(jax_wall=[3.5, 3.6, 3.7]))
    data["settings"].update(bucket=None, lengths="lognormal", seed=0, repeats=3,
                            torch_backend="inductor", dtype="float32", device="cpu",
                            leak_padding=False)  # fmt: skip
    run = RunRecord(1, "2026-01-01T00:00:00+00:00", None, "finished", {}, {"kind": "dynamic"},
                    {"dynamic": data})  # fmt: skip
    section = markdown.render(summarize_run(run, [], [])).split("## Recommendations", 1)[1]
    assert "- **fastest** — gpt/tiny seq-len: in jax use jax-jit-bucketed" in section
    assert "- **bucketing** — gpt/tiny seq-len: with more than" in section
