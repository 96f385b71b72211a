"""The verdict picks only correct strategies; break-even points are where the modelled totals
(compiles × seconds each + steps × steady step) of the two strategies meet."""

from __future__ import annotations

from typing import Any

import pytest

from twinbench.dynamic.suite import break_even, verdict
from twinbench.dynamic.view import render_markdown

STEPS = 10


def _row(name: str, framework: str, *, compiles: int, compile_s: float, step: float,
         wall: list[float], passed: bool = True) -> dict[str, Any]:  # fmt: skip
    return {
        "strategy": name, "framework": framework, "status": "ok", "compiles": compiles,
        "compile_s": compile_s, "steady_median_s": step, "compiles_per_step": [0] * STEPS,
        "wall_s": wall, "wall_median_s": sorted(wall)[len(wall) // 2],
        "correctness": {"passed": passed, "detail": ""},
    }  # fmt: skip


ROWS = [
    _row("torch-eager", "torch", compiles=0, compile_s=0.0, step=0.5, wall=[5.0, 5.1, 5.2]),
    _row("torch-compile", "torch", compiles=2, compile_s=8.0, step=0.3, wall=[11, 11.2, 11.1]),
    _row("jax-jit", "jax", compiles=4, compile_s=8.0, step=0.1, wall=[9.0, 9.1, 9.2]),
    _row("jax-jit-bucketed", "jax", compiles=1, compile_s=2.0, step=0.15, wall=[3.5, 3.6, 3.7]),
    _row("jax-jit-pad-max", "jax", compiles=1, compile_s=2.0, step=0.05, wall=[2.0, 2.1, 2.2],
         passed=False),
]  # fmt: skip


def test_a_wrong_strategy_gets_no_verdict_and_the_fastest_correct_one_wins() -> None:
    v = verdict(ROWS)
    assert v["fastest"] == {"torch": "torch-eager", "jax": "jax-jit-bucketed"}
    assert v["overall"] == "jax-jit-bucketed"  # pad-max is faster but its losses are wrong
    assert v["excluded"] == ["jax-jit-pad-max"]
    assert v["ratio"]["slower"] == "torch-eager" and v["ratio"]["ci_low"] > 1


def test_break_even_points_are_where_the_two_totals_meet() -> None:
    rows = {r["strategy"]: r for r in ROWS}
    points = {(p["strategy"], p["against"]): p for p in break_even(rows)}
    shapes = points[("jax-jit", "jax-jit-bucketed")]["value"]
    per_shape, bucketed = rows["jax-jit"], rows["jax-jit-bucketed"]
    each = per_shape["compile_s"] / per_shape["compiles"]
    assert shapes * each + STEPS * per_shape["steady_median_s"] == pytest.approx(
        bucketed["compile_s"] + STEPS * bucketed["steady_median_s"]
    )
    steps = points[("torch-compile", "torch-eager")]["value"]
    compiled, eager = rows["torch-compile"], rows["torch-eager"]
    assert compiled["compile_s"] + steps * compiled["steady_median_s"] == pytest.approx(
        steps * eager["steady_median_s"]
    )


def test_the_view_turns_break_even_into_advice() -> None:
    data = {
        "settings": {"scenario": "seq-len", "workload": "gpt", "size": "tiny", "steps": STEPS,
                     "bucket": None, "lengths": "lognormal", "seed": 0, "repeats": 3,
                     "torch_backend": "inductor", "dtype": "float32", "device": "cpu",
                     "leak_padding": False},
        "lengths": [5, 9] * 5, "strategies": [], "verdict": verdict(ROWS), "failures": [],
    }  # fmt: skip
    text = render_markdown(data)
    assert "## Recommendation" in text
    assert "pad to buckets: jax-jit-bucketed beats jax-jit" in text
    assert "no verdict (failed or wrong): jax-jit-pad-max" in text


def test_a_serving_run_reads_as_forward_passes() -> None:
    settings = {"scenario": "batch", "workload": "gpt", "phase": "infer", "size": "tiny",
                "steps": STEPS, "bucket": None, "lengths": "lognormal", "seed": 0, "repeats": 1,
                "torch_backend": "inductor", "dtype": "float32", "device": "cpu",
                "leak_padding": False}  # fmt: skip
    data = {"settings": settings, "lengths": [3, 7] * 5, "strategies": [],
            "verdict": verdict(ROWS), "failures": []}  # fmt: skip
    assert f"{STEPS} serving steps (forward only), batch sizes" in render_markdown(data)
    trained = {**data, "settings": {**settings, "phase": "train", "workload": "mlp"}}
    assert f"{STEPS} training steps, batch sizes" in render_markdown(trained)
